"""ONNX Runtime engine (CPU), the default.

Export: MSRG.step and MSRG.utterance through torch.onnx's dynamo exporter, state as named inputs
and outputs. Every axis is fixed except the batch axis, which is dynamic: ORT's CPU kernels do not
specialise on static shapes (measured: same latency at B=1), and one file then serves any number
of streams. The utterance length is fixed at L = config.max_utterance_steps. Each GRU cell of the
step is one ONNX GRU node (engines/onnx_gru.py): 119 nodes after ORT's fusions instead of 163.

Run: one InferenceSession per function, graph optimisation ORT_ENABLE_ALL, sequential execution,
`threads` intra-op threads (default 1: at B=1 the step is ~120 small kernels and thread hand-offs
cost more than they save). Outputs are fresh NumPy arrays each call, so states stay values.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from contract.names import STATE_NAMES
from engines.artefacts import ArtefactSpec, artefact_root, ensure
from engines.base import (
    UTTERANCE_INPUT_NAMES,
    UTTERANCE_OUTPUT_NAMES,
    BackendEngine,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
    pad_utterance,
    state_shapes,
)

log = logging.getLogger(__name__)

OPSET = 18
KIND = "onnx"
FILES = ("step.onnx", "utterance.onnx")


def _versions() -> dict[str, str]:
    import onnx
    import onnxscript
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
    }


def artefact_spec(checkpoint_digest: str, config_dict: dict[str, Any]) -> ArtefactSpec:
    return ArtefactSpec(
        kind=KIND,
        files=FILES,
        key={
            "checkpoint_digest": checkpoint_digest,
            "config": config_dict,
            "opset": OPSET,
            "batch": "dynamic",
            "gru": "fused",  # GRU cells as ONNX GRU nodes (engines/onnx_gru.py)
            "exporter": _versions(),
        },
    )


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """The exporter logs every deduplicated initializer at INFO and warns about torchvision ops
    it cannot register; neither concerns MSRG, so only errors get through while exporting."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model: Any, folder: Path) -> dict[str, Any]:
    """Write step.onnx and utterance.onnx for `model` (an MSRG in eval mode) into `folder`."""
    import torch

    from engines.graphs import (
        STEP_GRAPH_INPUTS,
        STEP_GRAPH_OUTPUTS,
        StepGraph,
        UtteranceGraph,
        shapes,
        step_example,
        utterance_example,
    )
    from engines.onnx_gru import gru_cell_op, translation_table

    model = model.to("cpu").eval()
    # Trace at B=2: torch.export specialises a dimension of size 1, which would pin the batch.
    batch = torch.export.Dim("batch", min=1, max=4096)
    jobs = [
        ("step.onnx", StepGraph(model, gru_cell_op()), step_example(model, 2), STEP_GRAPH_INPUTS,
         STEP_GRAPH_OUTPUTS),
        ("utterance.onnx", UtteranceGraph(model), utterance_example(model, 2),
         UTTERANCE_INPUT_NAMES, UTTERANCE_OUTPUT_NAMES),
    ]  # fmt: skip
    record: dict[str, Any] = {}
    for file, graph, example, in_names, out_names in jobs:
        with (
            torch.no_grad(),
            warnings.catch_warnings(),
            _quiet("onnx_ir", "onnxscript", "torch.onnx"),
        ):
            warnings.simplefilter("ignore")  # exporter chatter (torchvision ops, treespec)
            torch.onnx.export(
                graph, example, str(folder / file),
                input_names=list(in_names), output_names=list(out_names),
                dynamic_shapes=(tuple({0: batch} for _ in example),),  # one entry: *flat
                opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                custom_translation_table=translation_table(),
            )  # fmt: skip
        record[file] = {"inputs": shapes(example, in_names, "batch")}
    return {"shapes": record}


class OnnxEngine(BackendEngine):
    name = "onnx"

    def __init__(
        self, step_path: Path, utterance_path: Path, config: Any, *, threads: int | None = None
    ) -> None:
        super().__init__(config)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads if threads is not None else 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only; ORT warns about every unused initializer
        self.threads = opts.intra_op_num_threads
        providers = ["CPUExecutionProvider"]
        try:
            self._step_sess = ort.InferenceSession(str(step_path), opts, providers=providers)
            self._utt_sess = ort.InferenceSession(str(utterance_path), opts, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(f"ONNX Runtime cannot load {step_path.parent}: {first}") from None
        self._step_outputs = [o.name for o in self._step_sess.get_outputs()]
        self._utt_outputs = [o.name for o in self._utt_sess.get_outputs()]
        # Input names bound once; the step builds its feed with one dict comprehension.
        self._state_names = STATE_NAMES

    def _initial(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return tuple(np.zeros(s, np.float32) for s in state_shapes(self.config, batch_size))

    def _step(
        self, tensors: tuple[np.ndarray, ...], inputs: StepInputs
    ) -> tuple[StepResult, tuple[np.ndarray, ...]]:
        feed = dict(zip(self._state_names, tensors))
        feed["text"], feed["audio"] = inputs.text, inputs.audio
        feed["visual"], feed["mask"] = inputs.visual, inputs.mask
        out = self._step_sess.run(self._step_outputs, feed)
        # out = intensity (B,), modality_weights (B, 3), salience (B,), 9 state tensors
        return StepResult(out[0], out[1], out[2]), tuple(out[3:])

    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        feed = pad_utterance(inputs, self.config.max_utterance_steps)  # (B, L, ...)
        out = self._utt_sess.run(self._utt_outputs, feed)
        return UtteranceResult(*out)


def build_or_load(
    loaded: Any, *, threads: int | None = None, cache_dir: str | Path | None = None,
    rebuild: bool = True,
) -> OnnxEngine:  # fmt: skip
    """`loaded` is a msrg.checkpoint.LoadedCheckpoint. Exports when missing, stale or corrupt."""
    folder = artefact_root(loaded.path, cache_dir) / KIND
    spec = artefact_spec(loaded.digest, loaded.config.to_dict())
    ensure(
        folder, spec, lambda tmp: export_onnx(loaded.model, tmp), rebuild=rebuild,
        export_hint=f"python -m engines.export --checkpoint {loaded.path} --to onnx",
    )  # fmt: skip
    return OnnxEngine(folder / FILES[0], folder / FILES[1], loaded.config, threads=threads)
