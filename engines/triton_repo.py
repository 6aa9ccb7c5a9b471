"""Write a Triton Inference Server model repository for a checkpoint.

    python -m engines.triton_repo --checkpoint CKPT --out REPO --kind gpu|cpu

Both kinds hold two models: `msrg_step` (a sequence model, one correlation id per stream) and
`msrg_utterance` (stateless, dynamically batched). Both serve the exported ONNX graphs of
engines/graphs.py, so the same numbers come out of either.

gpu: `platform: onnxruntime_onnx` on KIND_GPU. The step's nine state tensors are Triton *implicit
     state* (`sequence_batching.state`, input `fe_h_text` <- output `fe_h_text_out`, zero initial
     state), kept on the server between a stream's requests; the sequence batcher's `oldest`
     strategy batches the steps of different streams. The server keeps only each stream's newest
     state. For NVIDIA's Triton container; the CPU bundle here has no ONNX Runtime backend.
cpu: `backend: python` (engines/triton_cpu_model.py, ONNX Runtime inside the backend). The model
     keeps a short history of states per correlation id (START / END / CORRID control inputs),
     addressed by client-chosen state ids, so a client may step again from a recent earlier state
     (the pipeline's revision re-run). For CPU servers and for the tests.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.names import STATE_NAMES
from engines.base import (
    STEP_INPUT_NAMES,
    STEP_OUTPUT_NAMES,
    UTTERANCE_INPUT_NAMES,
    UTTERANCE_OUTPUT_NAMES,
    EngineError,
    state_shapes,
)
from msrg.config import MSRGConfig

log = logging.getLogger(__name__)

STEP_MODEL = "msrg_step"
UTTERANCE_MODEL = "msrg_utterance"
# cpu kind only: which state a request steps from, and under which id its new state is kept.
PARENT, STATE_ID = "PARENT", "STATE_ID"
CONTROLS = (("START", "CONTROL_SEQUENCE_START"), ("END", "CONTROL_SEQUENCE_END"))
CORRID = "CORRID"
KINDS = ("gpu", "cpu")
CPU_MODEL_SOURCE = Path(__file__).resolve().parent / "triton_cpu_model.py"


@dataclass(frozen=True)
class RepoOptions:
    checkpoint: Path
    out: Path
    kind: str  # "gpu" | "cpu"
    max_batch_size: int = 64  # requests (streams) the server may run in one step call
    state_history: int = 128  # cpu: states kept per stream (12.8 s of steps at 10 Hz, ~3 MB)
    idle_s: float = 60.0  # a stream silent this long is ended by the server and its state freed
    instances: int = 1  # model instances (CPU: one per core the server may use)
    queue_delay_us: int = 200  # how long the batcher waits to fill a batch of streams
    cache_dir: Path | None = None  # where the ONNX export goes instead of beside the checkpoint

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"--kind must be gpu or cpu, got {self.kind!r}")
        for name in ("max_batch_size", "state_history", "instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.idle_s <= 0:
            raise ValueError(f"idle_s must be > 0, got {self.idle_s}")


# ----------------------------------------------------------------------- config.pbtxt text
def _dims(shape: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in shape) + " ]"


def _tensor(name: str, dims: tuple[int, ...], dtype: str = "TYPE_FP32") -> str:
    # Results that are (B,) per batch appear as [1] to clients; reshape says the model's own
    # tensor has no axis besides the batch.
    reshape = " reshape: { shape: [ ] }" if dims == () else ""
    dims = dims or (1,)
    return f'  {{ name: "{name}" data_type: {dtype} dims: {_dims(dims)}{reshape} }}'


def _io(kind: str, entries: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"


def step_io_dims(config: MSRGConfig) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, tuple]]:
    """Per-request dims (no batch axis) of the step's inputs, results and state tensors."""
    inputs = {**{m: (d,) for m, d in config.dims.items()}, "mask": (3,)}
    outputs = {"intensity": (), "modality_weights": (3,), "salience": ()}
    states = {n: s[1:] for n, s in zip(STATE_NAMES, state_shapes(config, 1))}
    assert tuple(inputs) == STEP_INPUT_NAMES and tuple(outputs) == STEP_OUTPUT_NAMES
    return inputs, outputs, states


def utterance_io_dims(config: MSRGConfig) -> tuple[dict[str, tuple], dict[str, tuple]]:
    length = config.max_utterance_steps
    inputs = {**{m: (length, d) for m, d in config.dims.items()}, "mask": (length, 3)}
    inputs.update({n: (length,) for n in ("valid", "intensity", "salience")})
    assert tuple(inputs) == UTTERANCE_INPUT_NAMES
    return inputs, {n: () for n in UTTERANCE_OUTPUT_NAMES}


def _parameters(values: dict[str, str]) -> str:
    rows = [f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in values.items()]
    return "parameters [\n" + ",\n".join(rows) + "\n]\n"


def step_config(options: RepoOptions, config: MSRGConfig, digest: str) -> str:
    inputs, outputs, states = step_io_dims(config)
    in_rows = [_tensor(n, d) for n, d in inputs.items()]
    out_rows = [_tensor(n, d) for n, d in outputs.items()]
    controls = [
        f'    {{ name: "{name}" control [ {{ kind: {kind} int32_false_true: [ 0, 1 ] }} ] }}'
        for name, kind in CONTROLS
    ]
    controls.append(
        f'    {{ name: "{CORRID}" control [ {{ kind: CONTROL_SEQUENCE_CORRID '
        "data_type: TYPE_UINT64 } ] }"
    )
    idle_us = int(options.idle_s * 1e6)
    oldest = (
        f"  oldest {{ max_candidate_sequences: 4096 preferred_batch_size: "
        f"[ {options.max_batch_size} ] max_queue_delay_microseconds: {options.queue_delay_us} }}\n"
    )
    if options.kind == "gpu":
        head = f'name: "{STEP_MODEL}"\nplatform: "onnxruntime_onnx"\n'
        state_rows = [
            f'    {{ input_name: "{n}" output_name: "{n}_out" data_type: TYPE_FP32 dims: '
            f"{_dims(d)}\n      initial_state: {{ data_type: TYPE_FP32 dims: {_dims(d)} "
            f'zero_data: true name: "zero" }} }}'
            for n, d in states.items()
        ]
        batching = (
            # No control inputs: an ONNX model must have an input for each, and implicit
            # state already resets to the zero initial state on START.
            "sequence_batching {\n" + oldest + f"  max_sequence_idle_microseconds: {idle_us}\n"
            "  state [\n" + ",\n".join(state_rows) + "\n  ]\n}\n"
        )
        group = f"instance_group [ {{ kind: KIND_GPU count: {options.instances} }} ]\n"
        params = {"checkpoint_digest": digest, "state_history": "1"}
    else:
        head = f'name: "{STEP_MODEL}"\nbackend: "python"\n'
        in_rows += [_tensor(PARENT, (1,), "TYPE_UINT64"), _tensor(STATE_ID, (1,), "TYPE_UINT64")]
        batching = (
            "sequence_batching {\n" + oldest + f"  max_sequence_idle_microseconds: {idle_us}\n"
            "  control_input [\n" + ",\n".join(controls) + "\n  ]\n}\n"
        )
        group = f"instance_group [ {{ kind: KIND_CPU count: {options.instances} }} ]\n"
        params = {
            "checkpoint_digest": digest, "function": "step", "onnx_file": "step.onnx",
            "state_history": str(options.state_history), "idle_s": str(options.idle_s),
        }  # fmt: skip
    return (
        head + f"max_batch_size: {options.max_batch_size}\n" + _io("input", in_rows)
        + _io("output", out_rows) + batching + group + _parameters(params)
    )  # fmt: skip


def utterance_config(options: RepoOptions, config: MSRGConfig, digest: str) -> str:
    inputs, outputs = utterance_io_dims(config)
    if options.kind == "gpu":
        head = f'name: "{UTTERANCE_MODEL}"\nplatform: "onnxruntime_onnx"\n'
        group = f"instance_group [ {{ kind: KIND_GPU count: {options.instances} }} ]\n"
        params = {"checkpoint_digest": digest}
    else:
        head = f'name: "{UTTERANCE_MODEL}"\nbackend: "python"\n'
        group = "instance_group [ { kind: KIND_CPU count: 1 } ]\n"  # once per utterance: rare
        params = {"checkpoint_digest": digest, "function": "utterance",
                  "onnx_file": "utterance.onnx"}  # fmt: skip
    return (
        head + f"max_batch_size: {options.max_batch_size}\n"
        + _io("input", [_tensor(n, d) for n, d in inputs.items()])
        + _io("output", [_tensor(n, d) for n, d in outputs.items()])
        + f"dynamic_batching {{ max_queue_delay_microseconds: {options.queue_delay_us} }}\n"
        + group + _parameters(params)
    )  # fmt: skip


# ----------------------------------------------------------------------- writing
def write_repository(options: RepoOptions) -> Path:
    """Export the ONNX graphs (or reuse current ones) and lay out the repository in options.out."""
    from engines import onnx as onnx_engine
    from engines.artefacts import artefact_root
    from msrg.checkpoint import load_checkpoint

    loaded = load_checkpoint(options.checkpoint)
    onnx_engine.build_or_load(loaded, cache_dir=options.cache_dir)  # exports unless current
    folder = artefact_root(loaded.path, options.cache_dir) / onnx_engine.KIND
    step_file, utt_file = (folder / f for f in onnx_engine.FILES)
    out = options.out
    for model, config_text, onnx_file in (
        (STEP_MODEL, step_config(options, loaded.config, loaded.digest), step_file),
        (UTTERANCE_MODEL, utterance_config(options, loaded.config, loaded.digest), utt_file),
    ):
        version = out / model / "1"
        if version.exists():
            shutil.rmtree(version)  # a stale model.onnx beside a new model.py would be served
        version.mkdir(parents=True)
        (out / model / "config.pbtxt").write_text(config_text, encoding="utf-8")
        if options.kind == "gpu":
            shutil.copyfile(onnx_file, version / "model.onnx")
        else:
            shutil.copyfile(onnx_file, version / onnx_file.name)
            shutil.copyfile(CPU_MODEL_SOURCE, version / "model.py")
    log.info("wrote the %s Triton repository for %s to %s", options.kind, loaded.path, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.triton_repo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="model repository folder")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--state-history", type=int, default=128, help="cpu: states per stream")
    parser.add_argument("--idle-s", type=float, default=60.0, help="end silent streams after")
    parser.add_argument("--instances", type=int, default=1, help="model instances")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX export location")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        write_repository(RepoOptions(**vars(args)))
    except (EngineError, ValueError, OSError) as exc:  # CheckpointError is a ValueError
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
