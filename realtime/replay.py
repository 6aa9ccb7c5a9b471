"""Whole-file feature extraction without threads, for dataset building and evaluation.

It runs the live pipeline's own parts (face extractor, audio front end with the same voice
features, voice activity and speech segments, speech recognition per segment, causal word
embeddings, and the aligner) in one thread, deterministically. The result equals the final
revision of every step that the live pipeline publishes for the same input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.aligner import Aligner, AlignerOptions
from realtime.audio_frontend import AudioFrontEnd
from realtime.extractors import Extractors
from realtime.extractors.face import FaceSampler
from realtime.extractors.vad import SegmentEnd
from realtime.sources.base import Source, records
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
    face_hz: float | None = None,
) -> ReplayFeatures:  # fmt: skip
    """Features of an iterable of VideoFrame / AudioBlock records in capture order.

    transcript: use these words instead of speech recognition (a ground-truth transcript), spread
    evenly over the detected speech, to measure what recognition errors cost. face_hz: face
    analyses per second as in the live pipeline (None: the step rate).
    """
    aligner = Aligner(
        AlignerOptions(step_hz=step_hz, expect_video=has_video, expect_audio=has_audio)
    )
    # Offline, latency is moot: audio goes to openSMILE a second at a time (same frames).
    front = AudioFrontEnd(pause_ms, voice_chunk_s=1.0) if has_audio else None
    try:
        return _replay(records, extractors, aligner, front, has_video, step_hz, transcript,
                       face_hz)  # fmt: skip
    finally:
        if front is not None:
            front.close()


def _replay(
    records, extractors: Extractors, aligner: Aligner, front: AudioFrontEnd | None,
    has_video: bool, step_hz: float, transcript: str | None, face_hz: float | None,
) -> ReplayFeatures:  # fmt: skip
    has_audio = front is not None
    sampler = (
        FaceSampler(extractors.face, step_hz if face_hz is None else face_hz)
        if has_video and extractors.face is not None
        else None
    )
    words: list[Word] = []
    segments: list[tuple[float, float]] = []
    end_s = 0.0

    def close_segments(events) -> None:
        for event in events:
            if not isinstance(event, SegmentEnd):
                continue
            segments.append((event.t_start_s, event.t_end_s))
            if transcript is not None:
                continue
            t0, samples = front.cut(event.t_start_s, event.t_end_s)
            seg_words = extractors.recognizer.transcribe(samples, t0) if len(samples) else []
            aligner.set_words(
                event.t_start_s, event.t_end_s, extractors.words.embed_words(seg_words)
            )
            words.extend(seg_words)

    for record in records:
        if isinstance(record, VideoFrame):
            if has_video:
                assert sampler is not None, "a video source needs Extractors.load(with_face=True)"
                aligner.push_face(sampler.push(record), record.t_s)
                end_s = max(end_s, record.t_s)
        elif has_audio:
            update = front.push(record)
            aligner.push_voice(update.voice, record.t_start_s)
            aligner.push_speech(update.speech)
            close_segments(update.events)
            end_s = max(end_s, record.t_end_s)
    if front is not None:
        update = front.flush()
        aligner.push_voice(update.voice, end_s)
        close_segments(update.events)
    if transcript is not None:
        words = spread_words(transcript, segments or [(0.0, end_s)])
        aligner.set_words(-math.inf, math.inf, extractors.words.embed_words(words))
    aligner.set_text_final_until(math.inf)
    steps = aligner.flush(end_s)  # built after every word is known: all final
    return ReplayFeatures(steps, words, segments, end_s)


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
