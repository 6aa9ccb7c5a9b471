"""Voice activity: silero VAD (ONNX, explicit state) and a pure speech segmenter.

`SileroVad` turns audio into one speech probability per 512-sample chunk (32 ms at 16 kHz).
`SpeechSegmenter` turns probabilities into segment start/end events; it has no model and no
clock of its own, so it is tested on synthetic probabilities. The live pipeline closes an
utterance on a segment end, and starts recognising it early at a `PauseOnset`.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.stage import Stage
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, SpeechProbability

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 512  # silero's fixed chunk at 16 kHz
CONTEXT_SAMPLES = 64  # silero v5 sees the last 64 samples of the previous chunk as well
CHUNK_S = CHUNK_SAMPLES / SAMPLE_RATE_HZ
_STATE_SHAPE = (2, 1, 128)  # (LSTM h/c, batch, hidden)
_PACKAGE = "silero-vad"
_EPS_S = 1e-9  # durations are differences of float stream times


class VadModelError(RuntimeError):
    """The silero VAD model file or onnxruntime is missing; one actionable line."""


def silero_onnx_path() -> Path:
    """The packaged silero_vad.onnx, located without importing silero_vad (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError(f"package {_PACKAGE} is not installed; `pip install {_PACKAGE}`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadModelError(
            f"{path} is missing; reinstall with `pip install --force-reinstall {_PACKAGE}`"
        )
    return path


class SileroVad(Stage[AudioBlock]):
    """push(AudioBlock) -> list[SpeechProbability], one per completed 512-sample chunk; a stage
    (realtime/stage.py). The recurrent state and the 64-sample context are explicit arrays
    carried between calls; close() drops the ONNX session.
    """

    def __init__(self, model_path: Path | None = None, gap_tolerance_s: float = 0.02) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise VadModelError("onnxruntime is not installed; `pip install onnxruntime`") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a 576-sample LSTM step: threads cost more than they save
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or silero_onnx_path()),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self._gap_tolerance_s = gap_tolerance_s
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)  # (< CHUNK_SAMPLES,) not yet a full chunk
        self._t0_s: float | None = None
        self._n_samples = 0  # samples pushed since reset
        self._n_chunks = 0

    def push(self, block: AudioBlock) -> list[SpeechProbability]:
        if self._session is None:
            raise VadModelError("the voice activity detector was closed; create a new one")
        if self._t0_s is not None:
            expected_s = self._t0_s + self._n_samples / SAMPLE_RATE_HZ
            if abs(block.t_start_s - expected_s) > self._gap_tolerance_s:
                log.warning("vad: audio gap of %.3f s; resetting", block.t_start_s - expected_s)
                self.reset()
        if self._t0_s is None:
            self._t0_s = block.t_start_s
        self._n_samples += len(block.samples)
        audio = np.concatenate([self._pending, np.asarray(block.samples, dtype=np.float32)])
        n_full = len(audio) // CHUNK_SAMPLES
        out = []
        for k in range(n_full):
            chunk = audio[k * CHUNK_SAMPLES : (k + 1) * CHUNK_SAMPLES]
            probability = self.probability(chunk)
            t_start_s = self._t0_s + self._n_chunks * CHUNK_S
            out.append(SpeechProbability(t_start_s, t_start_s + CHUNK_S, probability))
            self._n_chunks += 1
        self._pending = audio[n_full * CHUNK_SAMPLES :].copy()
        return out

    def flush(self) -> list[SpeechProbability]:
        """End of input: a last chunk shorter than 512 samples is never scored (silero needs
        whole chunks), so nothing is owed; the stream is forgotten."""
        self.reset()
        return []

    def close(self) -> None:
        self._session = None  # onnxruntime frees the model with its last reference

    def probability(self, chunk: np.ndarray) -> float:
        """Speech probability of one (512,) chunk; advances the state and context."""
        x = np.concatenate([self._context, chunk])[None, :]  # (1, 576)
        prob, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sr}
        )  # (1, 1), (2, 1, 128)
        self._context = x[0, -CONTEXT_SAMPLES:].copy()
        return float(prob[0, 0])


@dataclass(frozen=True)
class SegmenterOptions:
    threshold: float = 0.5  # a chunk at or above this is speech
    neg_threshold: float | None = None  # below this is silence; between keeps the current state
    pause_ms: float = 600.0  # silence of at least this long closes a segment
    min_speech_ms: float = 250.0  # speech shorter than this (clicks, coughs) never opens one
    padding_ms: float = 100.0  # widen segments by this on both sides (soft onsets and offsets)
    max_segment_s: float = 28.0  # force a close before Whisper's 30 s window is exceeded

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"SegmenterOptions.threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.silence_threshold <= self.threshold:
            raise ValueError("SegmenterOptions.neg_threshold must be in [0, threshold]")
        for name in ("pause_ms", "min_speech_ms", "padding_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"SegmenterOptions.{name} must be >= 0")
        if self.max_segment_s <= 0:
            raise ValueError("SegmenterOptions.max_segment_s must be > 0")

    @property
    def silence_threshold(self) -> float:
        # silero's own default hysteresis: 0.15 below the speech threshold
        return (
            self.neg_threshold
            if self.neg_threshold is not None
            else max(self.threshold - 0.15, 0.01)
        )


@dataclass(frozen=True, slots=True)
class SegmentStart:
    segment_id: int
    t_start_s: float  # stream time the speech began (padded)
    t_detected_s: float  # stream time of the audio that confirmed it


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    segment_id: int
    t_start_s: float
    t_end_s: float  # stream time the speech ended (padded)
    t_detected_s: float  # stream time of the audio that confirmed the pause
    forced: bool = False  # closed by max_segment_s or flush, not by a pause


SegmentEvent = SegmentStart | SegmentEnd


@dataclass(frozen=True, slots=True)
class PauseOnset:
    """Silence has begun inside an open segment and lasted the padding: if it goes on to last
    pause_ms, the segment's SegmentEnd will have exactly this t_end_s. Not an event (nothing is
    decided yet); the live pipeline uses it to start speech recognition before the pause is
    confirmed (speculative ASR)."""

    segment_id: int
    t_start_s: float
    t_end_s: float  # the segment's end if this silence becomes a pause


class SpeechSegmenter(Stage[SpeechProbability]):
    """push(SpeechProbability) -> events; flush() closes an open segment; a stage
    (realtime/stage.py) with no model and no I/O, so close() has nothing to release."""

    def __init__(self, options: SegmenterOptions | None = None) -> None:
        self.options = options or SegmenterOptions()
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        self._candidate_s: float | None = None  # onset of speech not yet long enough
        self._open: SegmentStart | None = None
        self._silence_s: float | None = None  # onset of the current silence inside a segment
        self._floor_s = float("-inf")  # padding never reaches back past the previous segment
        self._last_end_s: float | None = None

    @property
    def in_speech(self) -> bool:
        return self._open is not None

    @property
    def pause_onset(self) -> PauseOnset | None:
        """The open segment's would-be end, once its current silence has lasted the padding (so
        the audio up to that end has been heard); None while speech goes on or no segment is
        open. Speech resuming makes it None again; a later silence gives a new one."""
        if self._open is None or self._silence_s is None or self._last_end_s is None:
            return None
        pad_s = self.options.padding_ms / 1000.0
        if self._last_end_s - self._silence_s + _EPS_S < pad_s:
            return None
        # The same expression as the close by a pause in push(): the end must match exactly.
        return PauseOnset(self._open.segment_id, self._open.t_start_s, self._silence_s + pad_s)

    @property
    def decided_until_s(self) -> float:
        """No segment can start before this any more. A segment opens only after min_speech_ms
        of speech and its start is then moved back by the padding, so the horizon trails the
        audio heard: at a pending candidate's backdated start, else one padding behind the last
        chunk (also while a segment is open: the core holds text back at an open segment's
        start anyway, and a uniform rule never moves the horizon back when the segment closes)."""
        if self._last_end_s is None:
            return 0.0
        pad_s = self.options.padding_ms / 1000.0
        start = self._candidate_s if self._candidate_s is not None else self._last_end_s
        return max(start - pad_s, self._floor_s, 0.0)

    def push(self, p: SpeechProbability) -> list[SegmentEvent]:
        opts = self.options
        pad_s = opts.padding_ms / 1000.0
        events: list[SegmentEvent] = []
        self._last_end_s = p.t_end_s
        speech = p.probability >= opts.threshold
        silent = p.probability < opts.silence_threshold
        if self._open is None:
            if self._candidate_s is None:
                if speech:
                    self._candidate_s = p.t_start_s
            elif silent:
                self._candidate_s = None  # too short: a click, not speech
            if self._candidate_s is not None and (
                p.t_end_s - self._candidate_s + _EPS_S >= opts.min_speech_ms / 1000.0
            ):
                t_start_s = max(self._candidate_s - pad_s, self._floor_s)
                self._open = SegmentStart(self._next_id, t_start_s, p.t_end_s)
                self._next_id += 1
                self._candidate_s = self._silence_s = None
                events.append(self._open)
            return events
        if silent and self._silence_s is None:
            self._silence_s = p.t_start_s
        elif speech:
            self._silence_s = None
        if (
            self._silence_s is not None
            and p.t_end_s - self._silence_s + _EPS_S >= opts.pause_ms / 1000.0
        ):
            events.append(self._close(min(self._silence_s + pad_s, p.t_end_s), p.t_end_s, False))
        elif p.t_end_s - self._open.t_start_s + _EPS_S >= opts.max_segment_s:
            events.append(self._close(p.t_end_s, p.t_end_s, True))
            if not silent:  # speech continues: open the next segment right here
                self._open = SegmentStart(self._next_id, p.t_end_s, p.t_end_s)
                self._next_id += 1
                events.append(self._open)
        return events

    def flush(self) -> list[SegmentEvent]:
        """End of stream: close an open segment at the last audio (or its trailing silence)."""
        events: list[SegmentEvent] = []
        if self._open is not None and self._last_end_s is not None:
            t_end_s = self._last_end_s
            if self._silence_s is not None:
                t_end_s = min(self._silence_s + self.options.padding_ms / 1000.0, t_end_s)
            events.append(self._close(t_end_s, self._last_end_s, True))
        self.reset()
        return events

    def _close(self, t_end_s: float, t_detected_s: float, forced: bool) -> SegmentEnd:
        assert self._open is not None
        end = SegmentEnd(self._open.segment_id, self._open.t_start_s, t_end_s, t_detected_s, forced)
        self._open = None
        self._silence_s = None
        self._floor_s = t_end_s
        return end
