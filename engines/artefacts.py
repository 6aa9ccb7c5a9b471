"""Where exported engine files live, and how we know they still belong to the checkpoint.

Layout, next to the checkpoint (or under `cache_dir` when the checkpoint's folder is read-only):

    <checkpoint stem>.engines/
        onnx/                     manifest.json, step.onnx, utterance.onnx
        tensorrt-fp32-b1/         manifest.json, step.ep, utterance.ep
        tensorrt-fp16-b8/         ...

`manifest.json` is written last and records the key the files were built for (checkpoint digest,
exporter and runtime versions, opset, precision, batch size, shapes) plus each file's sha256 and
size. On load:
  - no manifest, or a key that differs (another checkpoint, a new exporter / TensorRT)  -> stale;
  - a file whose size or sha256 differs from the manifest, or an unreadable manifest     -> corrupt.
Stale or corrupt artefacts are rebuilt when `rebuild` is allowed and refused with an ArtefactError
(one line naming the cause and the export command) when it is not. Never used silently.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.base import ArtefactError
from msrg.digest import file_digest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "affect-monitor/engine-artefacts"
FORMAT_VERSION = 1


def artefact_root(checkpoint: str | Path, cache_dir: str | Path | None = None) -> Path:
    checkpoint = Path(checkpoint)
    base = Path(cache_dir) if cache_dir is not None else checkpoint.parent
    return base / f"{checkpoint.stem}.engines"


@dataclass(frozen=True)
class ArtefactSpec:
    """What a set of artefacts must have been built for. `key` entries are compared on load."""

    kind: str  # sub-folder name, e.g. "onnx" or "tensorrt-fp16-b8"
    files: tuple[str, ...]  # file names inside the folder
    key: dict[str, Any]  # checkpoint digest, versions, opset, precision, batch, shapes, ...


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise _Problem("corrupt", f"{path} is not readable JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _Problem("corrupt", f"{path} is not an engine artefact manifest")
    return manifest


class _Problem(Exception):
    def __init__(self, what: str, why: str) -> None:
        super().__init__(why)
        self.what, self.why = what, why


def check(folder: Path, spec: ArtefactSpec) -> None:
    """Raise _Problem("missing" | "stale" | "corrupt", why) unless the folder is usable."""
    manifest = _read_manifest(folder)
    if manifest is None:
        raise _Problem("missing", f"no {MANIFEST} in {folder}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _Problem("stale", f"manifest format {manifest.get('format_version')}")
    built_for = manifest.get("key", {})
    for name, want in spec.key.items():
        have = built_for.get(name)
        if have != want:
            raise _Problem(
                "stale", f"{name} is {_short(want)}, artefacts were built for {_short(have)}"
            )
    recorded = manifest.get("files", {})
    for name in spec.files:
        path = folder / name
        entry = recorded.get(name)
        if entry is None:
            raise _Problem("corrupt", f"{name} is not listed in the manifest")
        if not path.is_file():
            raise _Problem("corrupt", f"{path} is missing")
        # Size first: a cheap check that catches truncation without hashing.
        if path.stat().st_size != entry.get("bytes") or file_digest(path) != entry.get("sha256"):
            raise _Problem("corrupt", f"{path} does not match its recorded sha256")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text[:16] + "…" if len(text) > 20 else text


def ensure(
    folder: Path, spec: ArtefactSpec, build: Callable[[Path], dict[str, Any]], *,
    rebuild: bool = True, export_hint: str = "python -m engines.export",
) -> Path:  # fmt: skip
    """Return `folder` holding valid artefacts for `spec`, (re)building them when needed.

    `build(tmp_dir)` writes `spec.files` into tmp_dir and returns extra manifest info (shapes).
    """
    try:
        check(folder, spec)
        log.debug("engine artefacts in %s are current", folder)
        return folder
    except _Problem as problem:
        if problem.what != "missing":
            log.warning("engine artefacts %s: %s (%s)", problem.what, problem.why, folder)
        if not rebuild:
            raise ArtefactError(
                f"engine artefacts in {folder} are {problem.what}: {problem.why}; "
                f"rebuild them with {export_hint}"
            ) from None
        log.info("building %s engine artefacts in %s (%s)", spec.kind, folder, problem.why)
    write(folder, spec, build)
    check(folder, spec)  # a freshly built set must verify, or something is badly wrong
    return folder


def write(folder: Path, spec: ArtefactSpec, build: Callable[[Path], dict[str, Any]]) -> None:
    """Build into a temporary sibling folder, then move files in with the manifest last, so a
    crash or a concurrent reader never sees a manifest that vouches for half-written files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    except OSError as exc:
        raise ArtefactError(
            f"cannot write engine artefacts to {folder} ({exc.strerror}); "
            "pass cache_dir= / --cache-dir to a writable folder"
        ) from None
    try:
        extra = build(tmp)
        files = {}
        for name in spec.files:
            path = tmp / name
            if not path.is_file():
                raise ArtefactError(f"exporter did not write {name} for {spec.kind}")
            files[name] = {"sha256": file_digest(path), "bytes": path.stat().st_size}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": spec.kind,
            "key": spec.key,
            "files": files,
            **extra,
        }
        (folder / MANIFEST).unlink(missing_ok=True)  # invalid until the new one lands
        for name in spec.files:
            os.replace(tmp / name, folder / name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), "utf-8")
        os.replace(tmp / MANIFEST, folder / MANIFEST)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
