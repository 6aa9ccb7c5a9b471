"""Labels files of annotated speech: one row a clip, `path,corpus,speaker,emotion,intensity`
(and an optional `split`: train, dev or test; test when absent).

- path: the clip (any audio or video file the media reader takes), absolute or relative to the
  labels file;
- corpus: a name to report figures by (e.g. ravdess, emodb);
- speaker: who speaks (speaker-independent splits and per-speaker figures);
- emotion: one of lab.emotion_targets.EMOTIONS; intensity: normal, strong or empty.

Every clip's target comes from lab.emotion_targets. A bad row stops the read with one line naming
the file, the row and the problem. The rules that name the shared corpora's files are here too
(`ravdess_rows`, `emodb_rows`); `python -m lab.write_speech_labels` writes the files.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.emotion_targets import EMOTIONS, INTENSITIES, Target, target

COLUMNS = ("path", "corpus", "speaker", "emotion", "intensity")
SPLITS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


class LabelsError(ValueError):
    """A labels file that cannot be used; the message is one line naming the row."""


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    corpus: str
    speaker: str
    emotion: str
    intensity: str
    split: str = "test"  # train | valid | test

    @property
    def id(self) -> str:
        return f"{self.corpus}/{self.path.stem}"

    @property
    def target(self) -> Target:
        return target(self.emotion, self.intensity)


def read_speech_labels(path: str | Path, check_files: bool = True) -> list[SpeechClip]:
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise LabelsError(
                f"{path} lacks column(s) {', '.join(missing)}; a labels file has the columns "
                f"{','.join(COLUMNS)} (and optionally split)"
            )
        rows = list(reader)
    clips, seen = [], set()
    for n, row in enumerate(rows, start=2):
        where = f"{path.name}:{n}"
        values = {k: (row.get(k) or "").strip() for k in (*COLUMNS, "split")}
        if values["emotion"] not in EMOTIONS:
            raise LabelsError(
                f"{where}: emotion {values['emotion']!r} is not one of {', '.join(EMOTIONS)}"
            )
        if values["intensity"] not in INTENSITIES:
            raise LabelsError(
                f"{where}: intensity {values['intensity']!r} is not normal, strong or empty"
            )
        split = SPLITS.get(values["split"].lower() or "test")
        if split is None:
            raise LabelsError(f"{where}: split {values['split']!r} is not train, dev or test")
        if not values["path"] or not values["corpus"]:
            raise LabelsError(f"{where}: path and corpus must not be empty")
        clip_path = Path(values["path"])
        if not clip_path.is_absolute():
            clip_path = (path.parent / clip_path).resolve()
        if check_files and not clip_path.is_file():
            raise LabelsError(f"{where}: file {clip_path} does not exist")
        clip = SpeechClip(clip_path, values["corpus"], values["speaker"], values["emotion"],
                          values["intensity"], split)  # fmt: skip
        if clip.id in seen:
            raise LabelsError(f"{where}: clip {clip.id} is listed twice")
        seen.add(clip.id)
        clips.append(clip)
    if not clips:
        raise LabelsError(f"{path} has no rows")
    return clips


def write_speech_labels(path: str | Path, clips: Iterable[SpeechClip]) -> int:
    """Write clips to `path`, their paths relative to its folder; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*COLUMNS, "split"))
        for c in clips:
            rel = os.path.relpath(c.path.resolve(), path.parent.resolve())
            split = {"valid": "dev"}.get(c.split, c.split)
            writer.writerow((rel, c.corpus, c.speaker, c.emotion, c.intensity, split))
            n += 1
    return n


# ----------------------------------------------------------------------------- the corpora's names
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}  # fmt: skip
RAVDESS_INTENSITIES = {"01": "normal", "02": "strong"}
_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy",
                  "T": "sad", "N": "neutral"}  # fmt: skip
_EMODB = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])$")
AUDIO_SUFFIXES = (".flac", ".wav", ".mp4")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def ravdess_clip(path: Path, dev_speakers: Iterable[str] = ()) -> SpeechClip | None:
    """RAVDESS `MM-VV-EE-II-SS-RR-AA`: modality, vocal channel (01 speech), emotion, intensity,
    statement, repetition, actor. None for a name that does not follow the rule or for song."""
    m = _RAVDESS.match(path.stem)
    if not m or m[2] != "01" or m[3] not in RAVDESS_EMOTIONS or m[4] not in RAVDESS_INTENSITIES:
        return None
    split = "valid" if m[7] in set(dev_speakers) else "train"
    return SpeechClip(path, "ravdess", m[7], RAVDESS_EMOTIONS[m[3]], RAVDESS_INTENSITIES[m[4]],
                      split)  # fmt: skip


def emodb_clip(path: Path, split: str = "test") -> SpeechClip | None:
    """EmoDB `SSTTTEV`: speaker, text, emotion letter (German initial), version."""
    m = _EMODB.match(path.stem)
    if not m:
        return None
    return SpeechClip(path, "emodb", m[1], EMODB_EMOTIONS[m[3]], "", split)


def corpus_rows(folder: Path, rule, **kwargs) -> tuple[list[SpeechClip], list[Path]]:  # noqa: ANN001
    """The clips of `folder` by its naming rule, and the files the rule does not name."""
    clips, other = [], []
    for p in _files(folder):
        clip = rule(p, **kwargs)
        (clips if clip else other).append(clip or p)
    return clips, other
