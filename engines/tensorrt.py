"""TensorRT engine through torch-tensorrt (NVIDIA GPUs), fp32 or fp16.

torch-tensorrt and CUDA are optional: nothing here imports them at module import; `require()`
checks both and raises a one-line EngineUnavailable naming what is missing.

Compilation: torch.export of the same flat step / utterance graphs the ONNX engine uses, then
torch_tensorrt.dynamo.compile with every shape fixed (TensorRT picks its kernels per shape): the
step at the engine's batch size B, the utterance at B x L. The compiled programs are saved with
torch_tensorrt.save next to the checkpoint, keyed by checkpoint digest, torch / torch-tensorrt /
TensorRT versions, GPU name (plans are device-specific), precision and batch size.

fp16: inputs, outputs and the carried state stay float32 at the interface (TensorRT may run
layers in half precision inside), so a caller never sees the precision.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from engines.artefacts import ArtefactSpec, artefact_root, ensure
from engines.base import (
    UTTERANCE_INPUT_NAMES,
    BackendEngine,
    EngineUnavailable,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
    pad_utterance,
    state_shapes,
)

log = logging.getLogger(__name__)

FILES = ("step.ep", "utterance.ep")
INSTALL_HINT = "pip install -e .[tensorrt] on a machine with an NVIDIA GPU and CUDA"


def missing() -> list[str]:
    """What keeps TensorRT from running here; empty when it can. Imports torch, not torch-tensorrt."""
    gaps = []
    if importlib.util.find_spec("torch_tensorrt") is None:
        gaps.append("torch-tensorrt is not installed")
    try:
        import torch

        if not torch.cuda.is_available():
            gaps.append("no CUDA device (torch.cuda.is_available() is False)")
    except ImportError:
        gaps.append("torch is not installed")
    return gaps


def require() -> Any:
    """Import and return torch_tensorrt, or raise the one-line EngineUnavailable."""
    gaps = missing()
    if gaps:
        raise EngineUnavailable(f"tensorrt engine unavailable: {'; '.join(gaps)}; {INSTALL_HINT}")
    try:
        import torch_tensorrt
    except Exception as exc:  # a broken install (CUDA / TensorRT library mismatch) lands here
        raise EngineUnavailable(
            f"tensorrt engine unavailable: importing torch_tensorrt failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"{INSTALL_HINT}"
        ) from None
    return torch_tensorrt


def _key(loaded: Any, batch_size: int, fp16: bool, trt: Any) -> dict[str, Any]:
    import torch

    try:
        import tensorrt

        trt_version = tensorrt.__version__
    except ImportError:
        trt_version = "unknown"
    return {
        "checkpoint_digest": loaded.digest,
        "config": loaded.config.to_dict(),
        "precision": "fp16" if fp16 else "fp32",
        "batch": batch_size,
        "versions": {
            "torch": torch.__version__,
            "torch_tensorrt": trt.__version__,
            "tensorrt": trt_version,
        },
        "gpu": torch.cuda.get_device_name(0),
    }


def _compile_one(trt: Any, graph: Any, example: tuple, fp16: bool, path: Path) -> None:
    import torch

    precisions = {torch.float32, torch.float16} if fp16 else {torch.float32}
    exported = torch.export.export(graph, example, strict=False)
    compiled = trt.dynamo.compile(
        exported, arg_inputs=list(example), enabled_precisions=precisions,
        min_block_size=1, truncate_double=True,
    )  # fmt: skip
    trt.save(compiled, str(path), output_format="exported_program", arg_inputs=list(example))


def compile_tensorrt(loaded: Any, folder: Path, batch_size: int, fp16: bool) -> dict[str, Any]:
    import torch

    from engines.graphs import (
        STEP_GRAPH_INPUTS,
        StepGraph,
        UtteranceGraph,
        shapes,
        step_example,
        utterance_example,
    )

    trt = require()
    model = loaded.model.to("cuda").eval()
    step_ex = step_example(model, batch_size, "cuda")
    utt_ex = utterance_example(model, batch_size, "cuda")
    with torch.no_grad():
        _compile_one(trt, StepGraph(model), step_ex, fp16, folder / FILES[0])
        _compile_one(trt, UtteranceGraph(model), utt_ex, fp16, folder / FILES[1])
    return {
        "shapes": {
            FILES[0]: {"inputs": shapes(step_ex, STEP_GRAPH_INPUTS, batch_size)},
            FILES[1]: {"inputs": shapes(utt_ex, UTTERANCE_INPUT_NAMES, batch_size)},
        }
    }


class TensorRTEngine(BackendEngine):
    """State lives on the GPU as CUDA tensors between steps; only inputs and results cross."""

    def __init__(self, folder: Path, config: Any, batch_size: int, fp16: bool) -> None:
        self.name = f"tensorrt-{'fp16' if fp16 else 'fp32'}"
        super().__init__(config)
        import torch

        require()  # registers TensorRT's runtime ops before the programs are loaded
        self._torch = torch
        self.batch_size = batch_size
        self.device = torch.device("cuda")
        self._step_fn = torch.export.load(str(folder / FILES[0])).module()
        self._utt_fn = torch.export.load(str(folder / FILES[1])).module()

    def _check_batch(self, batch_size: int) -> None:
        if batch_size != self.batch_size:
            raise ValueError(
                f"this TensorRT engine was compiled for batch size {self.batch_size}, "
                f"got {batch_size}; load_engine(..., batch_size={batch_size})"
            )

    def _gpu(self, x: np.ndarray) -> Any:
        return self._torch.from_numpy(x).to(self.device, non_blocking=True)

    def _initial(self, batch_size: int) -> tuple[Any, ...]:
        self._check_batch(batch_size)
        shapes = state_shapes(self.config, batch_size)
        return tuple(self._torch.zeros(s, device=self.device) for s in shapes)

    def _step(self, tensors: tuple[Any, ...], inputs: StepInputs) -> tuple[StepResult, tuple]:
        torch = self._torch
        with torch.inference_mode():
            feats = [self._gpu(x) for x in (inputs.text, inputs.audio, inputs.visual, inputs.mask)]
            out = self._step_fn(*feats, *tensors)  # 3 results + 9 new state tensors (fresh)
            result = StepResult(*(t.float().cpu().numpy() for t in out[:3]))
        return result, tuple(out[3:])

    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        self._check_batch(inputs.batch_size)
        torch = self._torch
        padded = pad_utterance(inputs, self.config.max_utterance_steps)  # (B, L, ...)
        with torch.inference_mode():
            out = self._utt_fn(*(self._gpu(padded[n]) for n in UTTERANCE_INPUT_NAMES))
            return UtteranceResult(*(t.float().cpu().numpy() for t in out))


def build_or_load(
    loaded: Any, *, batch_size: int = 1, fp16: bool = False,
    cache_dir: str | Path | None = None, rebuild: bool = True,
) -> TensorRTEngine:  # fmt: skip
    trt = require()
    precision = "fp16" if fp16 else "fp32"
    kind = f"tensorrt-{precision}-b{batch_size}"
    folder = artefact_root(loaded.path, cache_dir) / kind
    spec = ArtefactSpec(kind=kind, files=FILES, key=_key(loaded, batch_size, fp16, trt))
    hint = f"python -m engines.export --checkpoint {loaded.path} --to tensorrt"
    hint += f" --batch-size {batch_size}" + (" --fp16" if fp16 else "")
    ensure(
        folder, spec, lambda tmp: compile_tensorrt(loaded, tmp, batch_size, fp16),
        rebuild=rebuild, export_hint=hint,
    )  # fmt: skip
    return TensorRTEngine(folder, loaded.config, batch_size, fp16)
