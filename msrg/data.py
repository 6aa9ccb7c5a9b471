"""Datasets in the MMSA pickle format, read into aligned step sequences with masks.

MMSA layout: `data[split][key]`, splits `train`, `valid`, `test`; keys `text` (N, L, D_t),
`audio` (N, L_a, D_a), `vision` (N, L_v, D_v), `regression_labels` (N,), `id`, `raw_text`;
unaligned files add `audio_lengths`, `vision_lengths`. Files written by `lab.build_dataset` add
`mask` (N, L, 3) presence and `valid` (N, L) real-step flags, which are used when present.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
REQUIRED_KEYS = ("text", "audio", "vision", "regression_labels")


class DataFormatError(ValueError):
    """A data file is missing, unreadable or of the wrong shape; the message is one line."""


@dataclass
class SequenceSet:
    """N labelled utterances as aligned step sequences (float32)."""

    text: np.ndarray  # (N, T, D_t)
    audio: np.ndarray  # (N, T, D_a)
    visual: np.ndarray  # (N, T, D_v)
    mask: np.ndarray  # (N, T, 3) modality presence
    valid: np.ndarray  # (N, T) real (non-padding) steps
    labels: np.ndarray  # (N,) in [-3, 3]
    ids: list[str]
    raw_text: list[str]
    # Digest of the MiniLM adapter the text features were embedded with ('' = the base encoder
    # or not recorded, as in MMSA files); training stores the matching adapter in the checkpoint.
    text_adapter: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dims(self) -> dict[str, int]:
        return {
            "text": self.text.shape[2],
            "audio": self.audio.shape[2],
            "visual": self.visual.shape[2],
        }


def _pool_to_steps(x: np.ndarray, lengths: np.ndarray, steps: int) -> np.ndarray:
    """Average each sequence's first `length` frames into `steps` equal bins: (N, L, D) -> (N, steps, D)."""
    out = np.zeros((x.shape[0], steps, x.shape[2]), dtype=np.float32)
    for n, length in enumerate(lengths):
        length = int(min(max(length, 0), x.shape[1]))
        if length == 0:
            continue
        edges = np.linspace(0, length, steps + 1)
        for s in range(steps):
            lo, hi = int(edges[s]), max(int(edges[s + 1]), int(edges[s]) + 1)
            out[n, s] = x[n, lo : min(hi, length)].mean(axis=0)
    return out


def _split_from_dict(split: dict, name: str, where: str) -> SequenceSet:
    missing = [k for k in REQUIRED_KEYS if k not in split]
    if missing:
        raise DataFormatError(f"{where}: split '{name}' lacks key(s) {', '.join(missing)}")
    text = np.asarray(split["text"], dtype=np.float32)
    audio = np.asarray(split["audio"], dtype=np.float32)
    vision = np.asarray(split["vision"], dtype=np.float32)
    labels = np.asarray(split["regression_labels"], dtype=np.float32).reshape(-1)
    for key, arr in (("text", text), ("audio", audio), ("vision", vision)):
        if arr.ndim != 3 or arr.shape[0] != len(labels):
            raise DataFormatError(
                f"{where}: split '{name}' key '{key}' has shape {arr.shape}, "
                f"expected (N={len(labels)}, steps, features)"
            )
    n, steps = text.shape[:2]
    if "valid" in split:
        valid = np.asarray(split["valid"], dtype=np.float32)
    else:
        # Padding rows are all-zero text rows in MMSA files; a sample with none counts fully.
        valid = (np.abs(text).sum(axis=2) > 0).astype(np.float32)
        valid[valid.sum(axis=1) == 0] = 1.0
    # Unaligned files: pool audio and vision onto the text steps using their valid lengths.
    if audio.shape[1] != steps:
        lengths = np.asarray(split.get("audio_lengths", [audio.shape[1]] * n))
        audio = _pool_to_steps(audio, lengths, steps)
    if vision.shape[1] != steps:
        lengths = np.asarray(split.get("vision_lengths", [vision.shape[1]] * n))
        vision = _pool_to_steps(vision, lengths, steps)
    if "mask" in split:
        mask = np.asarray(split["mask"], dtype=np.float32)
    else:
        mask = np.repeat(valid[:, :, None], 3, axis=2)
    if mask.shape != (n, steps, 3) or valid.shape != (n, steps):
        raise DataFormatError(
            f"{where}: split '{name}' has mask {mask.shape} / valid {valid.shape}, expected ({n}, {steps}, 3) / ({n}, {steps})"
        )
    for key, arr in (("text", text), ("audio", audio), ("vision", vision), ("labels", labels)):
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            if key == "labels":
                raise DataFormatError(f"{where}: split '{name}' has {bad} non-finite labels")
            arr[~np.isfinite(arr)] = 0.0  # MMSA audio features contain -inf; zero them as MMSA does
    ids = [str(i) for i in split.get("id", range(n))]
    raw = [str(t) for t in split.get("raw_text", [""] * n)]
    adapter = str(split.get("text_adapter", ""))
    return SequenceSet(text, audio, vision, mask, valid, labels, ids, raw, adapter)


def load_mmsa(path: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, SequenceSet]:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"data file {path} does not exist")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception as exc:
        raise DataFormatError(
            f"data file {path} is not a readable pickle ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(
            f"data file {path} holds a {type(data).__name__}, expected a dict of splits"
        )
    absent = [s for s in splits if s not in data]
    if absent:
        raise DataFormatError(
            f"data file {path} lacks split(s) {', '.join(absent)} (has {', '.join(map(str, data))})"
        )
    sets = {s: _split_from_dict(data[s], s, str(path)) for s in splits}
    dims = {s: v.dims for s, v in sets.items()}
    if len({tuple(d.values()) for d in dims.values()}) != 1:
        raise DataFormatError(f"data file {path} has different feature sizes per split: {dims}")
    return sets


def concat_sets(sets: list[SequenceSet]) -> SequenceSet:
    """One set from several (e.g. the same segments with ASR and with ground-truth words): steps
    are padded at the end to the longest, which every causal layer ignores."""
    if len(sets) == 1:
        return sets[0]
    if len({tuple(s.dims.values()) for s in sets}) != 1:
        raise DataFormatError(f"data files have different feature sizes: {[s.dims for s in sets]}")
    adapters = {s.text_adapter for s in sets}
    if len(adapters) != 1:
        raise DataFormatError(
            f"data files embed text with different adapters ({sorted(adapters)}); "
            "build (or re-embed) them with one"
        )
    steps = max(s.text.shape[1] for s in sets)

    def pad(a: np.ndarray) -> np.ndarray:
        widths = [(0, 0), (0, steps - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, widths)

    return SequenceSet(
        *(np.concatenate([pad(getattr(s, k)) for s in sets])
          for k in ("text", "audio", "visual", "mask", "valid")),
        labels=np.concatenate([s.labels for s in sets]),
        ids=[i for s in sets for i in s.ids],
        raw_text=[t for s in sets for t in s.raw_text],
        text_adapter=adapters.pop(),
    )  # fmt: skip


def make_synthetic_mmsa(
    path: str | Path, *, dims: tuple[int, int, int] = (16, 5, 8), steps: int = 20,
    sizes: tuple[int, int, int] = (256, 64, 64), seed: int = 0,
) -> Path:  # fmt: skip
    """Write an MMSA-format pickle whose labels are a known function of the features.

    label = 3 tanh(mean_t(text_t . w_t) + 0.5 * mean_t(audio_t . w_a) + 0.25 * mean_t(visual_t . w_v)),
    with trailing padding of random length, so a model that learns can get MAE well below the
    label standard deviation.
    """
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=d) / np.sqrt(d) for d in dims]
    data = {}
    for split, n in zip(SPLITS, sizes):
        lengths = rng.integers(steps // 2, steps + 1, size=n)
        valid = (np.arange(steps)[None, :] < lengths[:, None]).astype(np.float32)
        feats = [
            rng.normal(size=(n, steps, d)).astype(np.float32) * valid[:, :, None] for d in dims
        ]
        score = sum(
            c * ((f @ w) * valid).sum(axis=1) / lengths
            for c, f, w in zip((1.0, 0.5, 0.25), feats, weights)
        )
        labels = (3 * np.tanh(1.5 * score)).astype(np.float32)
        data[split] = {
            "text": feats[0], "audio": feats[1], "vision": feats[2],
            "regression_labels": labels, "valid": valid,
            "id": [f"{split}_{i}" for i in range(n)], "raw_text": [""] * n,
        }  # fmt: skip
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path
