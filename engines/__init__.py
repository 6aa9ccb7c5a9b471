"""Inference engines for MSRG behind one contract (see engines/base.py and docs/engines.md).

    engine = load_engine("auto", "model.pt")   # TensorRT > ONNX Runtime > eager, logged
    engine = load_engine("triton", "model.pt", triton_url="host:8001")  # never chosen by auto
    state = engine.initial_state(1)
    result, state = engine.step(state, StepInputs(text, audio, visual, mask))

Importing this package imports NumPy only; torch, ONNX Runtime and torch-tensorrt are imported
by the engine that needs them, when it is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from engines.base import (
    ArtefactError,
    Engine,
    EngineError,
    EngineState,
    EngineUnavailable,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
)

__all__ = [
    "KINDS", "ArtefactError", "Engine", "EngineError", "EngineState", "EngineUnavailable",
    "StepInputs", "StepResult", "UtteranceInputs", "UtteranceResult", "load_engine",
]  # fmt: skip

log = logging.getLogger(__name__)
KINDS = ("auto", "onnx", "tensorrt", "eager", "triton")


def load_engine(
    kind: str, checkpoint: str | Path, *, batch_size: int = 1, threads: int | None = None,
    fp16: bool = False, cache_dir: str | Path | None = None, rebuild: bool = True,
    triton_url: str | None = None,
) -> Engine:  # fmt: skip
    """Load `checkpoint` into the engine `kind` (auto | onnx | tensorrt | eager | triton).

    batch_size: streams per step (fixes TensorRT's compiled shapes; ONNX accepts any batch).
    threads: CPU intra-op threads (ONNX Runtime default 1; eager: torch.set_num_threads).
    fp16: TensorRT only. cache_dir: where artefacts go instead of beside the checkpoint.
    rebuild: False refuses stale or corrupted artefacts (ArtefactError) instead of rebuilding.
    triton_url: HOST:PORT of the Triton server's gRPC endpoint (triton only; default
    127.0.0.1:8001). The server must serve a repository written for this checkpoint.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(KINDS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from msrg.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    if kind == "triton":
        from engines import triton

        engine = triton.connect(loaded, triton_url or triton.DEFAULT_URL)
        log.info("engine: %s", engine.describe())
        return engine
    if triton_url is not None:
        log.warning("triton_url applies to the triton engine only; ignored for %s", kind)
    if kind == "auto":
        return _load_auto(loaded, batch_size, threads, fp16, cache_dir, rebuild)
    engine = _load(kind, loaded, batch_size, threads, fp16, cache_dir, rebuild)
    engine.selection_note = f"{engine.name} requested explicitly"
    log.info("engine: %s", engine.describe())
    return engine


def _load(kind, loaded, batch_size, threads, fp16, cache_dir, rebuild) -> Engine:  # noqa: ANN001
    if kind == "tensorrt":
        from engines import tensorrt

        return tensorrt.build_or_load(
            loaded, batch_size=batch_size, fp16=fp16, cache_dir=cache_dir, rebuild=rebuild
        )
    if fp16:
        log.warning("fp16 applies to the tensorrt engine only; %s runs in fp32", kind)
    if kind == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise EngineUnavailable("onnx engine unavailable: onnxruntime is not installed; "
                                    "pip install -e .")  # fmt: skip
        from engines import onnx

        return onnx.build_or_load(loaded, threads=threads, cache_dir=cache_dir, rebuild=rebuild)
    from engines.eager import EagerEngine

    return EagerEngine(loaded.model, threads=threads)


def _load_auto(loaded, batch_size, threads, fp16, cache_dir, rebuild) -> Engine:  # noqa: ANN001
    """TensorRT when an NVIDIA GPU and torch-tensorrt are present, else ONNX Runtime, else eager.
    A back-end that is present but fails to load is logged and the next one is tried."""
    from engines import tensorrt

    passed_over: list[str] = []
    gaps = tensorrt.missing()
    if gaps:
        passed_over.append(f"TensorRT not used: {'; '.join(gaps)}")
    candidates = ["onnx", "eager"] if gaps else ["tensorrt", "onnx", "eager"]
    for kind in candidates:
        if kind == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            passed_over.append("ONNX Runtime not used: onnxruntime is not installed")
            continue
        try:
            engine = _load(kind, loaded, batch_size, threads, fp16, cache_dir, rebuild)
        except (EngineError, RuntimeError, OSError) as exc:
            if kind == "eager":
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            passed_over.append(f"{kind} failed to load: {first}")
            log.warning("auto: %s failed to load (%s); trying the next engine", kind, first)
            continue
        reason = {
            "tensorrt": "NVIDIA GPU and torch-tensorrt present",
            "onnx": "ONNX Runtime on the CPU",
            "eager": "PyTorch eager, the last resort",
        }[kind]
        engine.selection_note = "; ".join(["auto", *passed_over, f"chose {engine.name}: {reason}"])
        log.info("engine: %s", engine.selection_note)
        return engine
    raise EngineUnavailable("no engine could be loaded")  # unreachable: eager raises itself
