"""What supervises the time-step intensities (datasets label utterances, not steps).

A step's intensity means: the model's estimate of the current utterance's sentiment from
everything perceived so far. Three terms, all over an utterance's *speech steps* (valid steps
with words or voice activity; silence carries no evidence):

- `mean`: the loss of the mean step intensity over the valid steps against the label (the
  original auxiliary loss; any single step may take any value as long as the mean fits);
- `progressive`: every speech step against the label, weighted by how much of the utterance has
  been heard, w_t = (t / T_u)^p for the t-th of the utterance's T_u speech steps, normalised to
  sum to 1 per utterance (early steps are uncertain, the last must match);
- smoothness: the mean absolute change between consecutive speech steps of an utterance.

Every function returns the mean over the utterances of the batch that have what it needs.
"""

from __future__ import annotations

import torch

AUX_TARGETS = ("mean", "progressive")


def speech_steps(mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, T) 1.0 where a valid step has words or voice activity; mask (B, T, 3), valid (B, T)."""
    present = (mask[..., 0] > 0) | (mask[..., 1] > 0)
    return (present & (valid > 0)).to(valid.dtype if valid.is_floating_point() else torch.float32)


def _elementwise(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    diff = pred - target
    return diff.abs() if kind == "l1" else diff * diff


def mean_step_loss(
    intensity: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor, kind: str = "l1"
) -> torch.Tensor:
    """The loss of the mean intensity over valid steps; intensity, valid (B, T), labels (B,)."""
    mean = (intensity * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    return _elementwise(kind, mean, labels).mean()


def progressive_weights(speech: torch.Tensor, power: float) -> torch.Tensor:
    """(B, T) weights (t / T_u)^power on speech steps, 0 elsewhere, each row summing to 1
    (rows without speech are all 0). t counts speech steps only, from 1."""
    t = torch.cumsum(speech, dim=1) * speech  # 1..T_u on speech steps
    total = speech.sum(1, keepdim=True).clamp(min=1.0)
    w = (t / total) ** power * speech
    return w / w.sum(1, keepdim=True).clamp(min=1e-12)


def progressive_loss(
    intensity: torch.Tensor, speech: torch.Tensor, labels: torch.Tensor, power: float = 1.0,
    kind: str = "l1",
) -> torch.Tensor:  # fmt: skip
    """Weighted per-step loss against the utterance label, averaged over utterances with speech."""
    w = progressive_weights(speech, power)
    per_utt = (w * _elementwise(kind, intensity, labels.unsqueeze(1))).sum(1)  # (B,)
    has = (speech.sum(1) > 0).to(intensity.dtype)
    return (per_utt * has).sum() / has.sum().clamp(min=1.0)


def smoothness_loss(intensity: torch.Tensor, speech: torch.Tensor) -> torch.Tensor:
    """Mean |change| between consecutive speech steps (non-speech steps between them skipped),
    averaged over utterances with at least two speech steps."""
    per_utt = []
    for row, s in zip(intensity, speech):
        y = row[s > 0]
        if len(y) >= 2:
            per_utt.append((y[1:] - y[:-1]).abs().mean())
    if not per_utt:
        return intensity.sum() * 0.0
    return torch.stack(per_utt).mean()
