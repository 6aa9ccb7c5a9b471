"""Checkpoints: the architecture config is stored beside the weights and the model is rebuilt
from it. Every failure is a CheckpointError with a one-line, actionable message."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from msrg.config import MODALITIES, MSRGConfig
from msrg.digest import file_digest
from msrg.modalities import ModalityRecordError, check_record, modality_usage
from msrg.model import MSRG
from msrg.text_adapter import AdapterError, adapter_encoder, check_adapter
from msrg.text_encoders import TextEncoder

FORMAT = "affect-monitor/msrg-checkpoint"
FORMAT_VERSION = 1
log = logging.getLogger(__name__)
_UNRECORDED_SEEN: set[str] = set()  # digests already logged as lacking a modality record


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another format, or does not fit the data."""


@dataclass
class LoadedCheckpoint:
    model: MSRG  # in eval mode
    path: Path
    digest: str  # sha256 of the file: keys exported engine artefacts to these exact weights
    meta: dict[str, Any] = field(default_factory=dict)
    # The encoder adapter the text features were computed with (msrg.text_adapter); None: base
    # MiniLM. It names its encoder, so the encoder is a property of the checkpoint.
    text_adapter: dict[str, Any] | None = None

    @property
    def config(self) -> MSRGConfig:
        return self.model.config

    @property
    def text_encoder(self) -> TextEncoder:
        """The sentence encoder the text features were computed with (MiniLM unless the adapter
        names another)."""
        return adapter_encoder(self.text_adapter)

    @property
    def modality_record(self) -> dict[str, Any] | None:
        """meta["modalities"] (msrg.modalities), None for a checkpoint saved before it existed."""
        return self.meta.get("modalities")

    @property
    def trained_modalities(self) -> tuple[str, ...]:
        """The modalities the model learned from; all of them when the checkpoint has no record."""
        record = self.modality_record
        return MODALITIES if record is None else tuple(record["trained"])

    @property
    def modality_usage(self) -> dict[str, str]:
        """Per modality "used" or "not used: <why>" (see msrg.modalities.modality_usage)."""
        return modality_usage(self.modality_record)


def save_checkpoint(
    model: MSRG, path: str | Path, meta: dict[str, Any] | None = None,
    text_adapter: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write atomically (temp file + rename) so a crash never leaves a half-written checkpoint.

    text_adapter: the encoder adapter the training features were embedded with; live extraction
    and evaluation apply it, so the model sees the text features it was trained on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
        "text_adapter": text_adapter,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass --checkpoint with a file from lab.train"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is unreadable or corrupted ({type(exc).__name__}); "
            "re-copy it or retrain with python -m lab.train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an affect-monitor MSRG checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('format_version')}, "
            f"this program reads version {FORMAT_VERSION}"
        )
    try:
        config = MSRGConfig.from_dict(payload["config"])
        model = MSRG(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} does not match the MSRG model: {first_line}"
        ) from None
    model.eval()
    adapter = payload.get("text_adapter")
    if adapter is not None:
        try:
            check_adapter(adapter)
        except AdapterError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}; re-copy it or retrain") from None
    loaded = LoadedCheckpoint(model=model, path=path, digest=file_digest(path),
                              meta=payload["meta"], text_adapter=adapter)  # fmt: skip
    _check_modalities(loaded)
    return loaded


def _check_modalities(loaded: LoadedCheckpoint) -> None:
    """Refuse a malformed modality record; say once per file when there is none."""
    record = loaded.modality_record
    if record is not None:
        try:
            check_record(record)
        except ModalityRecordError as exc:
            raise CheckpointError(f"checkpoint {loaded.path}: {exc}; re-stamp it with "
                                  "python -m lab.modality_record") from None  # fmt: skip
        return
    if loaded.digest not in _UNRECORDED_SEEN:
        _UNRECORDED_SEEN.add(loaded.digest)
        log.warning("checkpoint %s has no modality record: all modalities (%s) are assumed "
                    "trained; stamp it with python -m lab.modality_record", loaded.path,
                    ", ".join(MODALITIES))  # fmt: skip


def check_feature_dims(config: MSRGConfig, dims: dict[str, int], what: str, where: str) -> None:
    """Raise a one-line CheckpointError when `dims` (e.g. of a data file) differ from the model."""
    if dims != config.dims:
        ours = " / ".join(f"{k} {v}" for k, v in config.dims.items())
        theirs = " / ".join(f"{k} {dims.get(k)}" for k in config.dims)
        raise CheckpointError(
            f"{what} expects features {ours} but {where} has {theirs}; "
            "use a checkpoint trained on this feature set (or --preset matching the data)"
        )
