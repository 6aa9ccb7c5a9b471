"""Write (or refresh) the engine artefacts of a checkpoint ahead of time.

    python -m engines.export --checkpoint CKPT --to onnx|tensorrt [--fp16] [--batch-size B]

Loading an engine exports on demand anyway; this command does it before a session starts (or in a
Docker build), and with --force rebuilds even when the manifest says the files are current.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from engines.artefacts import artefact_root
from engines.base import EngineError


@dataclass(frozen=True)
class ExportOptions:
    checkpoint: Path
    target: str  # "onnx" | "tensorrt"
    fp16: bool = False
    batch_size: int = 1
    cache_dir: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.target not in ("onnx", "tensorrt"):
            raise ValueError(f"--to must be onnx or tensorrt, got {self.target!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")


def export(options: ExportOptions) -> Path:
    """Build or verify the artefacts; returns their folder."""
    from engines import load_engine

    log = logging.getLogger("engines.export")
    root = artefact_root(options.checkpoint, options.cache_dir)
    if options.target == "onnx":
        folder = root / "onnx"
        if options.fp16:
            log.warning("--fp16 applies to tensorrt only; the ONNX export is fp32")
        if options.batch_size != 1:
            log.info("the ONNX export has a dynamic batch axis; --batch-size is not needed")
    else:
        precision = "fp16" if options.fp16 else "fp32"
        folder = root / f"tensorrt-{precision}-b{options.batch_size}"
    if options.force and folder.exists():
        shutil.rmtree(folder)
    engine = load_engine(
        options.target, options.checkpoint, batch_size=options.batch_size, fp16=options.fp16,
        cache_dir=options.cache_dir,
    )  # fmt: skip
    log.info("%s artefacts ready in %s", engine.name, folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--to", required=True, choices=("onnx", "tensorrt"), dest="target")
    parser.add_argument("--fp16", action="store_true", help="TensorRT half precision")
    parser.add_argument("--batch-size", type=int, default=1, help="streams per step (TensorRT)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="instead of beside CKPT")
    parser.add_argument("--force", action="store_true", help="rebuild even when current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        export(ExportOptions(**vars(args)))
    except (EngineError, ValueError) as exc:  # CheckpointError is a ValueError
        logging.getLogger("engines.export").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
