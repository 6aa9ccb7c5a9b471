"""Streaming eGeMAPS voice descriptors: shape, rate, stream times, and equality with one pass."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from msrg.config import LIVE_AUDIO_DIM
from realtime.extractors.voice import HOP_S, VoiceExtractor, VoiceFeatureError, VoiceOptions
from realtime.tts import silence, synthesize_speech
from realtime.types import SAMPLE_RATE_HZ, AudioBlock

T0_S = 12.5  # an arbitrary stream time for the first sample


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return np.concatenate(
        [
            silence(0.3),
            synthesize_speech("I really love this, it is wonderful and bright."),
            silence(0.5),
            synthesize_speech("But the rain made everything terrible today."),
        ]
    )


@pytest.fixture(scope="module")
def whole_pass(speech: np.ndarray) -> np.ndarray:
    import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    return smile.process_signal(speech, SAMPLE_RATE_HZ).to_numpy(dtype=np.float32)  # (F, 25)


@pytest.fixture(scope="module")
def extractor() -> VoiceExtractor:
    ex = VoiceExtractor()
    yield ex
    ex.close()


def blocks(samples: np.ndarray, sizes: list[int]) -> list[AudioBlock]:
    out, pos, i = [], 0, 0
    while pos < len(samples):
        n = sizes[i % len(sizes)]
        out.append(AudioBlock(i, T0_S + pos / SAMPLE_RATE_HZ, samples[pos : pos + n]))
        pos, i = pos + n, i + 1
    return out


def stream(extractor: VoiceExtractor, samples: np.ndarray, sizes: list[int]) -> list:
    extractor.reset()
    results = [extractor.push(b) for b in blocks(samples, sizes)]
    results.append(extractor.flush())
    return results


def test_shape_rate_and_stream_times(extractor: VoiceExtractor, speech: np.ndarray) -> None:
    results = stream(extractor, speech, [1600])
    assert len(extractor.feature_names) == LIVE_AUDIO_DIM
    expected_t_s = T0_S
    for frames in results:
        assert frames.values.ndim == 2 and frames.values.shape[1] == LIVE_AUDIO_DIM
        assert frames.values.dtype == np.float32 and frames.hop_s == HOP_S
        assert frames.t_start_s == pytest.approx(expected_t_s, abs=1e-9)  # contiguous, no repeats
        expected_t_s += len(frames.values) * HOP_S
    n_frames = sum(len(f.values) for f in results)
    duration_s = len(speech) / SAMPLE_RATE_HZ
    assert abs(n_frames - duration_s / HOP_S) <= 5  # 100 frames/s (openSMILE drops the last 4)
    # During live pushes, frames lag the audio by the lookahead plus the 60 ms pitch window only.
    assert all(len(f.values) > 0 for f in results[2:-2])  # last block is short


@pytest.mark.parametrize("sizes", [[1600], [512, 1000, 3000, 777]], ids=["100ms", "irregular"])
def test_streaming_equals_whole_file(
    extractor: VoiceExtractor, speech: np.ndarray, whole_pass: np.ndarray, sizes: list[int]
) -> None:
    streamed = np.concatenate([f.values for f in stream(extractor, speech, sizes)])
    assert streamed.shape == whole_pass.shape
    # One graph streams the whole signal, as the whole-file pass does; measured: bit-identical
    # here (max abs difference 0.0). The tolerance only absorbs float32 noise.
    np.testing.assert_allclose(streamed, whole_pass, rtol=1e-5, atol=1e-4)


def test_one_second_chunks_give_the_same_frames(speech: np.ndarray, whole_pass: np.ndarray) -> None:
    """Fast replay writes a second at a time (fewer wake-ups); the frames must not change."""
    ex = VoiceExtractor(VoiceOptions(min_new_s=1.0))
    try:
        results = stream(ex, speech, [1600])
    finally:
        ex.close()
    assert sum(len(f.values) == 0 for f in results) >= len(results) // 2  # it really waited
    streamed = np.concatenate([f.values for f in results])
    np.testing.assert_allclose(streamed, whole_pass, rtol=1e-5, atol=1e-4)


def test_frames_follow_the_audio_closely(extractor: VoiceExtractor, speech: np.ndarray) -> None:
    """Streaming: after each 100 ms block, the frames out lag the audio in by little (the graph
    holds back ~80 ms; the old re-computing design held back 100 ms plus the pitch window)."""
    extractor.reset()
    out, lags = 0, []
    for block in blocks(speech, [1600]):
        out += len(extractor.push(block).values)
        lags.append((block.t_end_s - T0_S) / HOP_S - out)
    extractor.flush()
    assert np.median(lags) <= 15, lags
    assert max(lags[1:-1]) <= 30, lags  # a slow thread on a busy machine catches up next push


def test_flush_and_close_end_the_thread_and_release_the_handle(speech: np.ndarray) -> None:
    def smile_threads() -> int:
        return sum(t.name == "voice-smile" and t.is_alive() for t in threading.enumerate())

    before = smile_threads()
    ex = VoiceExtractor()
    ex.push(AudioBlock(0, 0.0, speech[:1600]))
    assert smile_threads() == before + 1
    ex.flush()
    assert smile_threads() == before  # end of input ends the run thread
    ex.push(AudioBlock(0, 0.0, speech[:1600]))  # a new stream on the same graph
    ex.close()  # mid-stream: ends the thread and frees openSMILE's handle
    assert smile_threads() == before
    assert ex._smile._engine._smileobj is None and ex.closed
    ex.close()  # idempotent
    with pytest.raises(VoiceFeatureError, match="closed"):
        ex.push(AudioBlock(0, 0.0, speech[:1600]))
    with VoiceExtractor() as ex2:  # a context manager closes too
        ex2.push(AudioBlock(0, 0.0, speech[:1600]))
    assert ex2.closed and smile_threads() == before


def test_gap_restarts_grid(extractor: VoiceExtractor) -> None:
    extractor.reset()
    tone = (0.1 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)
    extractor.push(AudioBlock(0, 0.0, tone))
    later = extractor.push(AudioBlock(1, 5.0, tone))  # 4.5 s gap
    assert later.t_start_s == pytest.approx(5.0)


def test_long_streams_do_not_accumulate_callbacks(extractor: VoiceExtractor, speech) -> None:
    for _ in range(3):  # each stream re-registers the sink callback on the same graph
        stream(extractor, speech, [1600])
    assert len(getattr(extractor._smile._engine, "_callbacks", [])) <= 1
