"""Session recording: every published message as JSON Lines plus CSVs of steps, utterances and
faces, flushed after every write so that a crash or a kill loses at most the message being written.

faces.csv (issue 33): a row per tracked face per step, written with the step's first publication
(revision 0: faces do not depend on words, so later revisions carry the same ones). `is_speaker`
is 1 for the step's speaker; empty cells where a value is absent (no pose from the Haar fallback,
no baseline before the person's own is ready)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path
from typing import TextIO

from contract import messages
from contract.readout_messages import READOUT_FIELDS, readout_values

log = logging.getLogger(__name__)

STEP_COLUMNS = ("seq", "revision", "final", "t_start", "t_end", "intensity", "w_text", "w_audio",
                "w_visual", "present_text", "present_audio", "present_visual", "latency_ms", "t_emit",
                *READOUT_FIELDS)  # fmt: skip
BASELINE_FILE = "baseline.json"
UTTERANCE_COLUMNS = ("utterance_id", "t_start", "t_end", "transcript", "utterance_intensity",
                     "timestep_intensity", "final_intensity", "label", "latency_ms", "t_emit",
                     "speaker")  # fmt: skip
FACE_COLUMNS = ("seq", "t_start", "t_end", "id", "x", "y", "w", "h",
                *(f"face_{k}" for k in messages.EXPRESSION_LABELS), "valence", "arousal", "quality",
                "speaking", "is_speaker", "yaw", "pitch", "roll", "baseline_valence",
                "baseline_arousal", "t_emit")  # fmt: skip


class RecorderError(RuntimeError):
    pass


# A person's affect estimates: readable by the user who recorded them and nobody else.
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def _open_private(path: Path) -> TextIO:
    """Append to `path`, created (or tightened, if it exists) to FILE_MODE."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask and ignores old files
    return open(fd, "a", newline="", encoding="utf-8")


class Recorder:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            if not self.folder.exists():
                self.folder.mkdir(parents=True)
                self.folder.chmod(FOLDER_MODE)  # only the folder we made: not a user's own one
            elif self.folder.stat().st_mode & 0o077:
                log.warning("recording into %s, which other users can open; the files "
                            "themselves are private (mode 600)", self.folder)  # fmt: skip
            self._jsonl = _open_private(self.folder / "messages.jsonl")
            self._steps_file = _open_private(self.folder / "steps.csv")
            self._utt_file = _open_private(self.folder / "utterances.csv")
            self._faces_file = _open_private(self.folder / "faces.csv")
        except OSError as exc:
            raise RecorderError(
                f"cannot write the recording to {self.folder}: {exc.strerror}"
            ) from None
        self._steps = csv.writer(self._steps_file)
        self._utts = csv.writer(self._utt_file)
        self._faces = csv.writer(self._faces_file)
        for file, writer, columns in ((self._steps_file, self._steps, STEP_COLUMNS),
                                      (self._utt_file, self._utts, UTTERANCE_COLUMNS),
                                      (self._faces_file, self._faces, FACE_COLUMNS)):  # fmt: skip
            if file.tell() == 0:
                writer.writerow(columns)
        for f in (self._steps_file, self._utt_file, self._faces_file):
            f.flush()  # headers on disk now: a kill during model loading leaves valid CSVs
        self.closed = False

    def send(self, msg: messages.Message) -> None:
        if self.closed:
            return
        payload = msg.to_dict()
        self._jsonl.write(json.dumps({"topic": msg.TOPIC, **payload}, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        if isinstance(msg, messages.StepMessage):
            w, p = msg.modality_weights, msg.present
            self._steps.writerow((msg.seq, msg.revision, int(msg.final), msg.t_start, msg.t_end,
                                  round(msg.intensity, 6), round(w.text, 6), round(w.audio, 6),
                                  round(w.visual, 6), int(p.text), int(p.audio), int(p.visual),
                                  round(msg.latency_ms, 3), msg.t_emit, *readout_cells(msg)))  # fmt: skip
            self._steps_file.flush()
            if msg.revision == 0 and msg.faces:
                self._faces.writerows(face_rows(msg))
                self._faces_file.flush()
        elif isinstance(msg, messages.UtteranceMessage):
            self._utts.writerow((msg.utterance_id, msg.t_start, msg.t_end, msg.transcript,
                                 round(msg.utterance_intensity, 6), round(msg.timestep_intensity, 6),
                                 round(msg.final_intensity, 6), msg.label, round(msg.latency_ms, 3),
                                 msg.t_emit, "" if msg.speaker is None else msg.speaker))  # fmt: skip
            self._utt_file.flush()

    def write_baseline(self, baseline: dict) -> None:
        """baseline.json beside the messages (replace, not append): `--baseline` replays it."""
        path = self.folder / BASELINE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(fd, "w", encoding="utf-8") as f:
            json.dump(baseline, f, indent=1)
        os.replace(tmp, path)  # a kill mid-write leaves the previous file whole
        log.info("baseline saved to %s", path)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for f in (self._jsonl, self._steps_file, self._utt_file, self._faces_file):
            f.flush()
            f.close()


def _cell(value: float | None) -> float | str:
    return "" if value is None or not math.isfinite(value) else round(value, 6)


def readout_cells(msg: messages.StepMessage) -> list[float | str]:
    """The readout columns of a step (STEP_COLUMNS after t_emit); empty cells when absent."""
    return [_cell(v) for v in readout_values(msg.face, msg.voice)]


def face_rows(msg: messages.StepMessage) -> list[list]:
    """FACE_COLUMNS rows of a step's faces."""
    rows = []
    for f in msg.faces or ():
        pose = [_cell(getattr(f.pose, k)) if f.pose else "" for k in ("yaw", "pitch", "roll")]
        base = [_cell(getattr(f.baseline, k)) if f.baseline else "" for k in ("valence", "arousal")]
        rows.append([msg.seq, msg.t_start, msg.t_end, f.id, *f.box,
                     *(_cell(getattr(f.expressions, k)) for k in messages.EXPRESSION_LABELS),
                     _cell(f.valence), _cell(f.arousal), _cell(f.quality), _cell(f.speaking),
                     int(f.id == msg.speaker), *pose, *base, msg.t_emit])  # fmt: skip
    return rows
