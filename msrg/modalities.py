"""Which modalities a checkpoint learned from, and what that means for live use.

A model can only weigh a modality it saw in training: a branch that never received input keeps
its initial weights, and feeding it live input adds noise, not information. `modality_record`
computes, from the training split's presence mask, the share of valid (non-padding) training
steps in which each modality was present, and the trained set by RULE. `lab.train` stores the
record in the checkpoint's meta as `meta["modalities"]`; `python -m lab.modality_record` stamps
an existing checkpoint from its training set. Live sessions mask the others (engines/gate.py).

NumPy only: the live side reads records without importing torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msrg.config import MODALITIES

MIN_TRAINED_SHARE = 0.05
RULE = (
    f"trained: present in at least {MIN_TRAINED_SHARE:.0%} of the valid steps of the training "
    "split; other modalities are masked absent in live use"
)
# What a modality is, in words a user knows (the dashboard and the status use them).
SENSES = {"text": "words", "audio": "voice", "visual": "faces"}
USED = "used"


class ModalityRecordError(ValueError):
    """A checkpoint's modality record is malformed; the message is one line."""


def modality_record(mask: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """The record of a training split: mask (N, T, 3) presence, valid (N, T) real steps.

    presence[m] = sum(valid * mask[..., m]) / sum(valid), over every step of every utterance."""
    mask = np.asarray(mask, np.float64)
    valid = np.asarray(valid, np.float64)
    if mask.ndim != 3 or mask.shape[2] != len(MODALITIES) or valid.shape != mask.shape[:2]:
        raise ModalityRecordError(
            f"mask {mask.shape} / valid {valid.shape} must be (N, T, 3) / (N, T)"
        )
    steps = float(valid.sum())
    if steps <= 0:
        raise ModalityRecordError("the training split has no valid steps")
    presence = {
        m: round(float((valid * (mask[:, :, i] > 0)).sum() / steps), 4)
        for i, m in enumerate(MODALITIES)
    }
    trained = [m for m in MODALITIES if presence[m] >= MIN_TRAINED_SHARE]
    return {"presence": presence, "trained": trained, "rule": RULE, "steps": int(steps)}


def check_record(record: Any) -> dict[str, Any]:
    """Validate a stored record (one-line ModalityRecordError) and return it."""
    if not isinstance(record, dict) or not isinstance(record.get("trained"), list):
        raise ModalityRecordError("meta['modalities'] must be a dict with a 'trained' list")
    unknown = [m for m in record["trained"] if m not in MODALITIES]
    if unknown:
        raise ModalityRecordError(f"meta['modalities'] names unknown modalities {unknown}")
    presence = record.get("presence", {})
    if not isinstance(presence, dict) or not all(
        isinstance(presence.get(m), (int, float)) for m in MODALITIES
    ):
        raise ModalityRecordError("meta['modalities']['presence'] needs a share per modality")
    return record


def modality_usage(record: dict[str, Any] | None) -> dict[str, str]:
    """Per modality "used" or "not used: <why>", for the status message, the log and the
    dashboard. Without a record every modality is used (older checkpoints)."""
    if record is None:
        return {m: USED for m in MODALITIES}
    out = {}
    for m in MODALITIES:
        if m in record["trained"]:
            out[m] = USED
            continue
        share = float(record["presence"][m])
        how = "without" if share == 0 else "with too few"
        out[m] = (f"not used: checkpoint trained {how} {SENSES[m]} (present in {share:.1%} of "
                  f"training steps)")  # fmt: skip
    return out


def use_mask(usage: dict[str, str]) -> np.ndarray:
    """(3,) float32 multiplier: 1 for a used modality, 0 for one the model never learned."""
    return np.asarray([usage[m] == USED for m in MODALITIES], np.float32)


def describe_usage(usage: dict[str, str]) -> str:
    """One log line: 'text used; audio used; visual not used: ...'."""
    return "; ".join(f"{m} {usage[m]}" for m in MODALITIES)
