"""The aligner: per-modality features in, fixed-rate model time steps out. Pure: no threads, no
I/O, no clock of its own; the caller passes stream times in.

Step k covers [k * hop_s, (k + 1) * hop_s). It is *ready* once audio and video have both been
delivered past its end (or a modality is late, see `pull`). Pooling per step:
  visual: mean of the features of frames with a face; present if any frame in the step had one;
  audio:  mean of the voice descriptor frames; present if voice activity was detected in the step;
  text:   the causal embedding of the last word whose span overlaps the step; present if any does.
          With `text_hold_s` > 0, a step in a gap between words keeps the last word that ended
          less than `text_hold_s` before the step starts (the words heard so far, until a pause
          that long; see docs/model.md).
Words arrive late (speech recognition runs off the step path). A step is *final* once text is
settled up to its end (`set_text_final_until`); until then a pull reports emitted steps whose
text changed so the caller can re-run the model over that provisional tail.

A stage (realtime/stage.py): push(event) files a face frame, voice frames, voice activity, words
or a stream's end and gives nothing, since a step waits for every modality or for the caller's
clock; pull(now_s) gives the StepBatch the events so far allow; flush() at the end of a stream
gives every step that starts before it; reset. StepAssembler (realtime/step_assembler.py) is
what feeds it, with the utterance tracker deciding how far text is settled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from msrg.config import LIVE_AUDIO_DIM, LIVE_TEXT_DIM, LIVE_VISUAL_DIM
from realtime.readouts import F0_INDEX
from realtime.stage import Stage
from realtime.stream_events import (
    FaceAnalysed,
    SpeechScored,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.types import (
    EmbeddedWord,
    FaceObservation,
    SpeechProbability,
    StepBatch,
    StepFeatures,
    VoiceFrames,
)

AlignerEvent = FaceAnalysed | VoiceAnalysed | SpeechScored | WordsRecognised | StreamEnded
_TIME_TOL_S = 1e-6  # stream times closer than this are the same instant (float sums of hops)


@dataclass(frozen=True)
class AlignerOptions:
    step_hz: float = 10.0
    expect_video: bool = True
    expect_audio: bool = True
    speech_threshold: float = 0.5  # VAD probability that marks a step's audio as present
    late_after_s: float = math.inf  # a modality this late no longer holds a step back (pull)
    # Text stays present this long after a word ends (0: only while a word's span overlaps the
    # step). Live and in dataset builds: the pause (PipelineOptions.text_hold, BuildOptions).
    text_hold_s: float = 0.0
    text_dim: int = LIVE_TEXT_DIM
    audio_dim: int = LIVE_AUDIO_DIM
    visual_dim: int = LIVE_VISUAL_DIM

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_hz) and 0 < self.step_hz <= 100):
            raise ValueError(f"--step-hz must be in (0, 100], got {self.step_hz}")
        if not (self.expect_video or self.expect_audio):
            raise ValueError("the aligner needs audio, video or both")
        if not self.late_after_s >= 0:
            raise ValueError(f"late_after_s must be >= 0 s, got {self.late_after_s}")
        if not (math.isfinite(self.text_hold_s) and self.text_hold_s >= 0):
            raise ValueError(f"text_hold_s must be >= 0 s, got {self.text_hold_s}")

    @staticmethod
    def hold_for(pause_ms: float, text_hold: bool) -> float:
        """text_hold_s for a pipeline: the pause that closes an utterance, or 0 without a hold."""
        return pause_ms / 1000.0 if text_hold else 0.0

    @property
    def hop_s(self) -> float:
        return 1.0 / self.step_hz


@dataclass
class _Acc:
    """Running sums of one step's visual and audio input."""

    visual_sum: np.ndarray
    visual_n: int = 0
    frames: int = 0
    audio_sum: np.ndarray | None = None
    audio_n: int = 0
    speech_max: float = 0.0
    newest_avail_s: float = -math.inf
    f0_n: int = 0  # voiced frames (F0 > 0) and the sum and sum of squares of their F0
    f0_sum: float = 0.0
    f0_sq: float = 0.0


@dataclass
class Aligner(Stage[AlignerEvent]):
    options: AlignerOptions = field(default_factory=AlignerOptions)
    EVENTS = (FaceAnalysed, VoiceAnalysed, SpeechScored, WordsRecognised, StreamEnded)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._end_s = 0.0  # the stream's end: its newest frame or the end of its audio
        self._acc: dict[int, _Acc] = {}
        self._next_seq = 0  # first step not yet emitted
        self._video_until_s = 0.0 if self.options.expect_video else math.inf
        self._audio_until_s = 0.0 if self.options.expect_audio else math.inf
        self._words: list[EmbeddedWord] = []  # sorted by start time
        self._emitted: dict[int, StepFeatures] = {}  # provisional steps, by seq
        self._text_final_until_s = 0.0
        self.sanitised = {"text": 0, "audio": 0, "visual": 0}

    # ------------------------------------------------------------------ inputs
    def push(self, event: AlignerEvent) -> None:
        """File one event. Gives nothing: a step waits for every modality (or the caller's clock,
        see pull), which one input alone cannot decide."""
        if isinstance(event, FaceAnalysed):
            self._face(event.observation, event.avail_s)
            self._end_s = max(self._end_s, event.observation.t_s)
        elif isinstance(event, VoiceAnalysed):
            self._voice(event.frames, event.avail_s)
        elif isinstance(event, SpeechScored):
            self._speech(event.probabilities)
        elif isinstance(event, WordsRecognised):
            self._set_words(event.result.t_start_s, event.result.t_end_s, event.words)
        elif isinstance(event, StreamEnded):
            if event.t_end_s is not None:
                self._end_s = max(self._end_s, event.t_end_s)
        else:
            raise TypeError(f"the aligner has no handler for {type(event).__name__}")

    def _index(self, t_s: float) -> int:
        # A tiny epsilon keeps a time exactly on a boundary (e.g. 0.3 from float sums) in the step it starts.
        return int(math.floor(t_s * self.options.step_hz + 1e-9))

    def _acc_for(self, k: int) -> _Acc:
        acc = self._acc.get(k)
        if acc is None:
            acc = self._acc[k] = _Acc(visual_sum=np.zeros(self.options.visual_dim, np.float64))
        return acc

    def _clean(self, values: np.ndarray, modality: str) -> np.ndarray:
        if np.isfinite(values).all():
            return values
        self.sanitised[modality] += 1
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    def _face(self, obs: FaceObservation, avail_s: float) -> None:
        """One processed video frame; `avail_s` is when its capture became available (stream s)."""
        k = self._index(obs.t_s)
        if k >= self._next_seq:
            acc = self._acc_for(k)
            acc.frames += 1
            acc.newest_avail_s = max(acc.newest_avail_s, avail_s)
            if obs.present:
                acc.visual_sum += self._clean(np.asarray(obs.features, np.float64), "visual")
                acc.visual_n += 1
        self._video_until_s = max(self._video_until_s, obs.t_s)

    def _voice(self, frames: VoiceFrames, avail_s: float) -> None:
        """Voice descriptor frames (10 ms hop); frame i is placed by its start time."""
        values = self._clean(np.asarray(frames.values, np.float64), "audio")
        for i, row in enumerate(values):
            k = self._index(frames.t_start_s + i * frames.hop_s)
            if k < self._next_seq:
                continue
            acc = self._acc_for(k)
            acc.audio_sum = row.copy() if acc.audio_sum is None else acc.audio_sum + row
            acc.audio_n += 1
            acc.newest_avail_s = max(acc.newest_avail_s, avail_s)
            f0 = row[F0_INDEX] if len(row) > F0_INDEX else 0.0
            if f0 > 0:
                acc.f0_n += 1
                acc.f0_sum += f0
                acc.f0_sq += f0 * f0
        if len(values):
            self._audio_until_s = max(
                self._audio_until_s, frames.t_start_s + len(values) * frames.hop_s
            )

    def _speech(self, probs: tuple[SpeechProbability, ...]) -> None:
        """VAD chunk probabilities; a chunk counts for every step it overlaps."""
        for p in probs:
            first, last = self._index(p.t_start_s), self._index(max(p.t_start_s, p.t_end_s - 1e-6))
            for k in range(max(first, self._next_seq), last + 1):
                acc = self._acc_for(k)
                acc.speech_max = max(acc.speech_max, p.probability)

    def _set_words(self, t_from_s: float, t_to_s: float, words: tuple[EmbeddedWord, ...]) -> None:
        """Replace every word that starts in [t_from_s, t_to_s) by `words` (a new ASR result for
        that span, partial or final)."""
        kept = [w for w in self._words if not (t_from_s <= w.word.t_start_s < t_to_s)]
        for w in words:
            emb = self._clean(np.asarray(w.embedding, np.float64), "text")
            kept.append(EmbeddedWord(w.word, emb.astype(np.float32)))
        self._words = sorted(kept, key=lambda w: (w.word.t_start_s, w.word.t_end_s))

    def set_text_final_until(self, t_s: float) -> None:
        """No word will change before `t_s` any more: steps ending by then become final."""
        self._text_final_until_s = max(self._text_final_until_s, t_s)

    # ------------------------------------------------------------------ outputs
    def _text_for(self, t0: float, t1: float) -> tuple[np.ndarray, bool]:
        """The last word overlapping [t0, t1), else (with a hold) the last word that ended less
        than text_hold_s before t0."""
        chosen = None
        held = None
        for i, w in enumerate(self._words):
            if w.word.t_start_s >= t1 - _TIME_TOL_S:  # on the boundary: it starts the next step
                break
            if w.word.t_end_s > t0 + _TIME_TOL_S:
                chosen = i
            elif w.word.t_end_s > t0 - self.options.text_hold_s and (
                held is None or w.word.t_end_s >= self._words[held].word.t_end_s
            ):
                held = i
        chosen = held if chosen is None else chosen
        if chosen is None:
            return np.zeros(self.options.text_dim, np.float32), False
        return self._words[chosen].embedding, True

    def _build(self, k: int) -> StepFeatures:
        hop = self.options.hop_s
        # The times the step carries, which _retext reads back: a word's place must not depend
        # on whether it came before the step was built or after (k * 0.1 is 0.6000000000000001).
        t0, t1 = round(k * hop, 6), round((k + 1) * hop, 6)
        acc = self._acc.pop(k, None) or _Acc(visual_sum=np.zeros(self.options.visual_dim))
        visual_present = acc.visual_n > 0
        visual = (acc.visual_sum / max(acc.visual_n, 1)).astype(np.float32)
        audio_present = acc.audio_n > 0 and acc.speech_max >= self.options.speech_threshold
        audio = (
            (acc.audio_sum / acc.audio_n).astype(np.float32)
            if acc.audio_n
            else np.zeros(self.options.audio_dim, np.float32)
        )
        if not audio_present:
            audio = np.zeros_like(audio)
        text, has_text = self._text_for(t0, t1)
        step = StepFeatures(
            seq=k, t_start_s=round(t0, 6), t_end_s=round(t1, 6), text=text, audio=audio,
            visual=visual, present=(has_text, audio_present, visual_present),
            t_newest_capture_s=acc.newest_avail_s if math.isfinite(acc.newest_avail_s) else t1,
            voiced_f0=(acc.f0_n, acc.f0_sum, acc.f0_sq) if audio_present else (0, 0.0, 0.0),
        )  # fmt: skip
        self._emitted[k] = step
        return step

    def pull(self, now_s: float | None = None) -> StepBatch:
        """What the events so far allow: the steps whose audio and video are in, provisional
        steps whose words changed, steps now final. With `now_s` (live stream time), a modality
        that has delivered nothing for `late_after_s` past a step's end no longer holds it back
        (a stalled camera must not stop the stream); that step has the modality marked absent."""
        return self._batch(self._pop_ready(now_s))

    def flush(self) -> StepBatch:
        """End of stream: every step that starts before its end (the newest frame or the end of
        the audio, from the events), then as pull. Called again, it builds nothing twice."""
        ready = []
        while self._next_seq * self.options.hop_s < self._end_s - 1e-9:
            ready.append(self._build(self._next_seq))
            self._next_seq += 1
        return self._batch(ready)

    def _batch(self, new: list[StepFeatures]) -> StepBatch:
        return StepBatch(tuple(new), tuple(self._retext()), tuple(self._pop_final()))

    def _pop_ready(self, now_s: float | None) -> list[StepFeatures]:
        hop = self.options.hop_s
        ready = []
        while True:
            # Times are sums of float hops (frame k at t0 + k * 0.01 s), so "covered up to t1" is
            # judged to a microsecond: a strict comparison held 13 % of live steps back a whole
            # audio block (100 ms) for a rounding error (10.599999999999998 < 10.6).
            t1 = (self._next_seq + 1) * hop
            late = now_s is not None and now_s - t1 > self.options.late_after_s
            covered = t1 - _TIME_TOL_S
            if not ((self._video_until_s >= covered or late)
                    and (self._audio_until_s >= covered or late)):  # fmt: skip
                break
            ready.append(self._build(self._next_seq))
            self._next_seq += 1
        return ready

    def _retext(self) -> list[StepFeatures]:
        """Provisional steps whose text changed since they were built, rebuilt (same seq)."""
        changed = []
        for k, old in sorted(self._emitted.items()):
            text, has_text = self._text_for(old.t_start_s, old.t_end_s)
            if has_text == old.present[0] and np.array_equal(text, old.text):
                continue
            new = StepFeatures(
                seq=k, t_start_s=old.t_start_s, t_end_s=old.t_end_s, text=text, audio=old.audio,
                visual=old.visual, present=(has_text, old.present[1], old.present[2]),
                t_newest_capture_s=old.t_newest_capture_s, voiced_f0=old.voiced_f0,
            )  # fmt: skip
            self._emitted[k] = new
            changed.append(new)
        return changed

    def _pop_final(self) -> list[int]:
        """Seqs of emitted steps that became final (text settled past their end), oldest first."""
        done = [
            k
            for k, e in sorted(self._emitted.items())
            if e.t_end_s <= self._text_final_until_s + 1e-9
        ]
        for k in done:
            del self._emitted[k]
        # Words entirely before every provisional step, and before the first step not yet built,
        # can no longer matter. (Not before the first unbuilt step: text can be settled past the
        # newest step when voice features lag the audio, as a second-at-a-time replay's do.)
        unbuilt_s = self._next_seq * self.options.hop_s
        horizon = min(
            (e.t_start_s for e in self._emitted.values()),
            default=min(self._text_final_until_s, unbuilt_s),
        )
        keep_after = horizon - self.options.text_hold_s - 1e-9  # a held word still counts
        self._words = [w for w in self._words if w.word.t_end_s > keep_after]
        return done

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def provisional(self) -> int:
        return len(self._emitted)
