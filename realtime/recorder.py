"""Session recording: every published message as JSON Lines plus CSVs of steps and utterances,
flushed after every write so that a crash or a kill loses at most the message being written."""

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
                     "timestep_intensity", "final_intensity", "label", "latency_ms", "t_emit")  # fmt: skip


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
        except OSError as exc:
            raise RecorderError(
                f"cannot write the recording to {self.folder}: {exc.strerror}"
            ) from None
        self._steps = csv.writer(self._steps_file)
        self._utts = csv.writer(self._utt_file)
        if self._steps_file.tell() == 0:
            self._steps.writerow(STEP_COLUMNS)
        if self._utt_file.tell() == 0:
            self._utts.writerow(UTTERANCE_COLUMNS)
        for f in (self._steps_file, self._utt_file):
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
        elif isinstance(msg, messages.UtteranceMessage):
            self._utts.writerow((msg.utterance_id, msg.t_start, msg.t_end, msg.transcript,
                                 round(msg.utterance_intensity, 6), round(msg.timestep_intensity, 6),
                                 round(msg.final_intensity, 6), msg.label, round(msg.latency_ms, 3),
                                 msg.t_emit))  # fmt: skip
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
        for f in (self._jsonl, self._steps_file, self._utt_file):
            f.flush()
            f.close()


def _cell(value: float | None) -> float | str:
    return "" if value is None or not math.isfinite(value) else round(value, 6)


def readout_cells(msg: messages.StepMessage) -> list[float | str]:
    """The readout columns of a step (STEP_COLUMNS after t_emit); empty cells when absent."""
    return [_cell(v) for v in readout_values(msg.face, msg.voice)]
