"""The audio half of feature extraction, shared by the live pipeline and dataset building:
voice descriptors, voice activity, speech segments, and the recent audio to cut them from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime.extractors.vad import (
    PauseOnset,
    SegmenterOptions,
    SegmentEvent,
    SileroVad,
    SpeechSegmenter,
)
from realtime.extractors.voice import VoiceExtractor, VoiceOptions
from realtime.stage import Stage
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, SpeechProbability, VoiceFrames


class AudioRing:
    """The last `seconds` of audio, to cut speech segments from."""

    def __init__(self, seconds: float) -> None:
        self._blocks: list[AudioBlock] = []
        self.limit_s = seconds

    def push(self, block: AudioBlock) -> None:
        self._blocks.append(block)
        while self._blocks and block.t_end_s - self._blocks[0].t_end_s > self.limit_s:
            self._blocks.pop(0)

    def cut(self, t_start_s: float, t_end_s: float) -> tuple[float, np.ndarray]:
        """(stream time of the first sample, samples) of [t_start_s, t_end_s) that is still held."""
        parts = [b for b in self._blocks if b.t_end_s > t_start_s and b.t_start_s < t_end_s]
        if not parts:
            return max(t_start_s, 0.0), np.zeros(0, np.float32)
        t0 = parts[0].t_start_s
        samples = np.concatenate([b.samples for b in parts])
        lo = max(0, int(round((t_start_s - t0) * SAMPLE_RATE_HZ)))
        hi = max(lo, int(round((t_end_s - t0) * SAMPLE_RATE_HZ)))
        return t0 + lo / SAMPLE_RATE_HZ, samples[lo:hi]


@dataclass
class AudioUpdate:
    voice: VoiceFrames
    speech: list[SpeechProbability]
    events: list[SegmentEvent] = field(default_factory=list)


class AudioFrontEnd(Stage[AudioBlock]):
    """push(AudioBlock) -> AudioUpdate; cut() segment audio. A stage (realtime/stage.py): flush at
    the end of input, reset for another stream, close (or `with`) on every way out."""

    def __init__(
        self, pause_ms: float = 600.0, history_s: float = 40.0, voice_chunk_s: float = 0.1
    ) -> None:
        """voice_chunk_s: new audio gathered before it is written to openSMILE's streaming graph
        (VoiceOptions.min_new_s): live uses 0.1 s for latency, a file replayed flat out 1 s
        (fewer thread wake-ups; the frames are the same)."""
        self.voice = VoiceExtractor(VoiceOptions(min_new_s=voice_chunk_s))
        try:
            self.vad = SileroVad()
        except BaseException:
            self.voice.close()  # a missing VAD model must not leave openSMILE's handle behind
            raise
        self.segmenter = SpeechSegmenter(SegmenterOptions(pause_ms=pause_ms))
        self.ring = AudioRing(history_s)

    def push(self, block: AudioBlock) -> AudioUpdate:
        self.ring.push(block)
        voice = self.voice.push(block)
        probs = self.vad.push(block)
        events = [e for p in probs for e in self.segmenter.push(p)]
        return AudioUpdate(voice, probs, events)

    def flush(self) -> AudioUpdate:
        return AudioUpdate(self.voice.flush(), self.vad.flush(), self.segmenter.flush())

    def reset(self) -> None:
        self.voice.reset()
        self.vad.reset()
        self.segmenter.reset()
        self.ring = AudioRing(self.ring.limit_s)

    def cut(self, t_start_s: float, t_end_s: float) -> tuple[float, np.ndarray]:
        return self.ring.cut(t_start_s, t_end_s)

    def close(self) -> None:
        """End openSMILE's run thread and free its handle, drop the VAD model (idempotent)."""
        try:
            self.voice.close()
        finally:
            self.vad.close()

    @property
    def decided_until_s(self) -> float:
        """No speech segment can start before this any more (see SpeechSegmenter)."""
        return self.segmenter.decided_until_s

    @property
    def pause_onset(self) -> PauseOnset | None:
        """Where the open segment ends if its current silence becomes a pause (see PauseOnset)."""
        return self.segmenter.pause_onset
