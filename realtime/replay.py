"""Whole-file feature extraction without threads, for dataset building and evaluation.

It runs the live pipeline's own parts in one thread, deterministically: the face sampler, the
audio front end (voice features, voice activity, speech segments), speech recognition per
segment and causal word embeddings make the events the pipeline's workers make
(realtime/stream_events.py), and a StepAssembler (realtime/step_assembler.py), the one the stream
core files them with, turns them into steps. Recognition here answers at once, so at the end of
the input every word is in and every step is built final: the result equals the final revision
of every step that the live pipeline publishes for the same input.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from realtime.aligner import AlignerOptions
from realtime.audio_frontend import AudioFrontEnd, AudioUpdate
from realtime.extractors import Extractors
from realtime.extractors.asr import AsrResult
from realtime.extractors.face import FaceSampler
from realtime.extractors.multi_face import MultiFaceAnalyzer
from realtime.extractors.vad import SegmentEnd, SegmentStart
from realtime.people import PeopleSampler
from realtime.sources.base import Source, records
from realtime.step_assembler import StepAssembler
from realtime.stream_events import (
    FaceAnalysed,
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, StepFeatures, VideoFrame, Word


@dataclass
class ReplayFeatures:
    steps: list[StepFeatures]
    words: list[Word]
    segments: list[tuple[float, float]]  # speech segments (stream seconds)
    duration_s: float

    @property
    def transcript(self) -> str:
        return " ".join(w.text.strip() for w in self.words).strip()

    def arrays(self) -> dict[str, np.ndarray]:
        """(T, D) arrays per modality, (T, 3) presence mask, (T,) valid flags."""
        if not self.steps:
            return {}
        return {
            "text": np.stack([s.text for s in self.steps]),
            "audio": np.stack([s.audio for s in self.steps]),
            "visual": np.stack([s.visual for s in self.steps]),
            "mask": np.asarray([s.present for s in self.steps], np.float32),
            "valid": np.ones(len(self.steps), np.float32),
        }


def audio_blocks(
    samples: np.ndarray, block_samples: int = SAMPLE_RATE_HZ // 10, t0_s: float = 0.0
) -> list[AudioBlock]:
    """Cut a mono 16 kHz signal into AudioBlocks as a microphone would deliver it."""
    return [
        AudioBlock(
            seq=i,
            t_start_s=t0_s + start / SAMPLE_RATE_HZ,
            samples=np.ascontiguousarray(samples[start : start + block_samples], np.float32),
        )
        for i, start in enumerate(range(0, len(samples), block_samples))
    ]


def extract(
    records, extractors: Extractors, *, has_video: bool, has_audio: bool,
    step_hz: float = 10.0, pause_ms: float = 600.0, transcript: str | None = None,
    face_hz: float | None = None, text_hold: bool = True, max_faces: int | None = None,
) -> ReplayFeatures:  # fmt: skip
    """Features of an iterable of VideoFrame / AudioBlock records in capture order.

    transcript: use these words instead of speech recognition (a ground-truth transcript), spread
    evenly over the detected speech, to measure what recognition errors cost. face_hz: face
    analyses per second as in the live pipeline (None: the step rate). text_hold: text stays
    present through gaps between words shorter than the pause, as live (PipelineOptions.text_hold).
    max_faces: track up to this many faces (the live pipeline's --max-faces): each step gets
    `people` (realtime/people.py) as live; None: the single-face path only (dataset builds).
    """
    steps = StepAssembler(
        AlignerOptions(step_hz=step_hz, expect_video=has_video, expect_audio=has_audio,
                       text_dim=extractors.words.dim,
                       text_hold_s=AlignerOptions.hold_for(pause_ms, text_hold))
    )  # fmt: skip
    sampler: FaceSampler | PeopleSampler | None = None
    rate = step_hz if face_hz is None else face_hz
    if has_video and extractors.face is not None:
        sampler = FaceSampler(extractors.face, rate)
    with contextlib.ExitStack() as stages:  # every stage closed, however the replay ends
        if sampler is not None and max_faces is not None:
            analyzer = MultiFaceAnalyzer(max_faces, net=extractors.face.net)
            stages.callback(analyzer.close)
            sampler = PeopleSampler(sampler, analyzer, rate)
        front = None
        if has_audio:
            # Offline, latency is moot: audio goes to openSMILE a second at a time (same frames).
            front = stages.enter_context(AudioFrontEnd(pause_ms, voice_chunk_s=1.0))
        replay = _Replay(steps, extractors, sampler, front, transcript)
        for record in records:
            if isinstance(record, VideoFrame):
                if has_video:
                    replay.frame(record)
            elif has_audio:
                replay.block(record)
        return replay.finish(has_video)


class _Replay:
    """One replay's state: the events it made so far, and what it returns beside the steps."""

    def __init__(
        self, steps: StepAssembler, extractors: Extractors,
        sampler: FaceSampler | PeopleSampler | None,
        front: AudioFrontEnd | None, transcript: str | None,
    ) -> None:  # fmt: skip
        self.steps, self.extractors, self.sampler, self.front = steps, extractors, sampler, front
        self.transcript = transcript
        self.words: list[Word] = []
        self.segments: list[tuple[float, float]] = []  # speech segments (stream seconds)
        self.end_s = 0.0  # the newest frame or the end of the audio so far
        self.audio_end_s = 0.0

    def frame(self, frame: VideoFrame) -> None:
        assert self.sampler is not None, "a video source needs Extractors.load(with_face=True)"
        self.steps.push(FaceAnalysed(self.sampler.push(frame), frame.t_s))
        self.end_s = max(self.end_s, frame.t_s)

    def block(self, block: AudioBlock) -> None:
        assert self.front is not None
        update = self.front.push(block)
        self._audio(update, block.t_start_s)
        self.steps.push(SpeechScored(tuple(update.speech), self.front.decided_until_s))
        self.end_s = max(self.end_s, block.t_end_s)
        self.audio_end_s = block.t_end_s

    def _audio(self, update: AudioUpdate, avail_s: float) -> None:
        """The events the pipeline's audio worker makes of an update, in its order, with the
        recogniser's words for each closed segment at once (the ASR worker's, live)."""
        self.steps.push(VoiceAnalysed(update.voice, avail_s))
        for event in update.events:
            if isinstance(event, SegmentStart):
                self.steps.push(SegmentOpened(event))
            else:
                self.steps.push(SegmentClosed(event, closed_monotonic_s=0.0))  # no clock here
                self._recognise(event)

    def _recognise(self, segment: SegmentEnd) -> None:
        self.segments.append((segment.t_start_s, segment.t_end_s))
        if self.transcript is not None:
            return  # the transcript's words are placed once every segment is known
        assert self.front is not None
        t0, samples = self.front.cut(segment.t_start_s, segment.t_end_s)
        said = self.extractors.recognizer.transcribe(samples, t0) if len(samples) else []
        result = AsrResult(segment.segment_id, segment.t_start_s, segment.t_end_s, True,
                           tuple(said), compute_s=0.0, queued_s=0.0)  # fmt: skip
        self.steps.push(WordsRecognised(result, tuple(self.extractors.words.embed_words(said))))
        self.words.extend(said)

    def finish(self, has_video: bool) -> ReplayFeatures:
        """End of input: the audio front end flushed, the streams ended, the transcript's words
        placed; then every step, all final."""
        if self.front is not None:
            self._audio(self.front.flush(), self.end_s)
            self.steps.push(StreamEnded("audio", self.audio_end_s))
        if has_video:
            self.steps.push(StreamEnded("video"))
        if self.transcript is not None:
            self.words = spread_words(self.transcript, self.segments or [(0.0, self.end_s)])
            result = AsrResult(-1, -math.inf, math.inf, True, tuple(self.words), 0.0, 0.0)
            embedded = tuple(self.extractors.words.embed_words(self.words))
            self.steps.push(WordsRecognised(result, embedded))
            self.steps.give_up_on_asr()  # no recogniser runs: no segment waits for words
        batch = self.steps.flush()
        assert batch.final == tuple(s.seq for s in batch.new), "replay steps are built final"
        assert not batch.revised, "a step built with its words is never revised"  # kept: batch.new
        return ReplayFeatures(list(batch.new), self.words, self.segments, self.end_s)


def spread_words(text: str, spans: list[tuple[float, float]]) -> list[Word]:
    """Words of `text` laid evenly over the total duration of `spans`, in order."""
    tokens = text.split()
    total_s = sum(max(0.0, b - a) for a, b in spans)
    if not tokens or total_s <= 0:
        return []
    per_word_s = total_s / len(tokens)
    words, span_idx, offset_s = [], 0, 0.0
    for token in tokens:
        while (
            span_idx < len(spans) - 1 and offset_s >= spans[span_idx][1] - spans[span_idx][0] - 1e-9
        ):
            offset_s -= spans[span_idx][1] - spans[span_idx][0]
            span_idx += 1
        start = spans[span_idx][0] + offset_s
        words.append(Word(token, start, start + per_word_s, 1.0))
        offset_s += per_word_s
    return words


def extract_source(source: Source, extractors: Extractors, **kwargs) -> ReplayFeatures:
    source.start()
    try:
        return extract(
            records(source), extractors, has_video=source.has_video, has_audio=source.has_audio, **kwargs
        )
    finally:
        source.stop()
