"""Every way a stream ends releases what its stages opened: after a Session or a Pipeline ends
(end of input, stop, a failing worker), the audio front end it made is closed (openSMILE's run
thread ended and its native handle freed, the VAD model dropped), and closing again is harmless.
A short synthetic audio source and stand-in recogniser and word embedder keep it cheap: no
speech, so neither is called."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engines import load_engine
from msrg.text_adapter import adapter_digest
from realtime import pipeline as pipeline_module
from realtime import replay as replay_module
from realtime.audio_frontend import AudioFrontEnd
from realtime.extractors import Extractors
from realtime.extractors.vad import VadModelError
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.publisher import PublisherOptions
from realtime.replay import audio_blocks, extract
from realtime.session import DEFAULT_CHECKPOINT, InputOptions, LoadedModel, Session, SessionOptions
from realtime.sources.base import Source, SourceStats
from realtime.tts import write_wav
from realtime.types import SAMPLE_RATE_HZ, AudioBlock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BLOCK_S = 0.1


class Quiet:
    """Stands in for the recogniser and the word embedder (never called without speech)."""

    adapter_digest = adapter_digest(None)
    dim = 384  # the base MiniLM's width, which an adapter digest of None means
    description = "no encoder (a stand-in that is never given words)"

    def transcribe(self, samples, t_start_s):  # noqa: ANN001, ANN201
        return []

    def embed_words(self, words):  # noqa: ANN001, ANN201
        return []


class NoiseSource(Source):
    """Low noise in 100 ms blocks, `seconds` of it (None: until stopped), at 10x real time."""

    name = "noise"
    has_audio = True

    def __init__(self, seconds: float | None) -> None:
        self._blocks = None if seconds is None else round(seconds / BLOCK_S)
        self._seq = 0
        self._stopped = threading.Event()
        self._rng = np.random.default_rng(0)

    def start(self) -> None:
        pass

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self.finished:
            return None
        self._stopped.wait(BLOCK_S / 10)
        n = round(BLOCK_S * SAMPLE_RATE_HZ)
        block = AudioBlock(self._seq, self._seq * BLOCK_S,
                           (0.001 * self._rng.standard_normal(n)).astype(np.float32))  # fmt: skip
        self._seq += 1
        return block

    @property
    def finished(self) -> bool:
        return self._stopped.is_set() or (self._blocks is not None and self._seq >= self._blocks)

    def stop(self) -> None:
        self._stopped.set()

    def stats(self) -> SourceStats:
        return SourceStats(audio_blocks=self._seq)


@pytest.fixture(scope="module")
def engine():
    return load_engine("eager", DEFAULT_CHECKPOINT)


@pytest.fixture
def front_ends(monkeypatch) -> list[AudioFrontEnd]:
    """Every audio front end the pipeline or a replay makes, kept for the test to inspect."""
    made: list[AudioFrontEnd] = []

    class Kept(AudioFrontEnd):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pipeline_module, "AudioFrontEnd", Kept)
    monkeypatch.setattr(replay_module, "AudioFrontEnd", Kept)
    return made


def assert_released(made: list[AudioFrontEnd]) -> None:
    (front,) = made
    assert front.voice.closed  # openSMILE's native handle is freed
    assert not any(t.name == "voice-smile" and t.is_alive() for t in threading.enumerate())
    front.close()  # a second close is harmless
    assert front.voice.closed
    with pytest.raises(VadModelError, match="closed"):
        front.vad.push(AudioBlock(0, 0.0, np.zeros(512, np.float32)))


def pipeline(source: Source, engine, options: PipelineOptions | None = None) -> Pipeline:  # noqa: ANN001
    extractors = Extractors(None, Quiet(), Quiet())  # type: ignore[arg-type]
    return Pipeline(options or PipelineOptions(), [source], engine, extractors, live=False)


def test_a_session_releases_openSMILE_at_the_end_of_its_input(tmp_path, engine, front_ends) -> None:
    noise = (0.001 * np.random.default_rng(1).standard_normal(SAMPLE_RATE_HZ)).astype(np.float32)
    wav = write_wav(tmp_path / "noise.wav", noise)
    session = Session(SessionOptions(
        inputs=InputOptions(video=wav), publish=PublisherOptions(endpoint="tcp://127.0.0.1:*"),
    ), extractors=Extractors(None, Quiet(), Quiet()),  # type: ignore[arg-type]
       model=LoadedModel(engine, None))  # fmt: skip
    session.start()
    try:
        assert session.pipeline.wait(60)
    finally:
        session.stop()
    assert session.pipeline.stats.steps_published >= 10
    assert_released(front_ends)
    session.stop()  # stopping again is harmless too


def test_a_session_that_fails_to_start_releases_what_it_opened(
    tmp_path, engine, front_ends, monkeypatch
) -> None:
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE_HZ, np.float32))
    session = Session(SessionOptions(
        inputs=InputOptions(video=wav), publish=PublisherOptions(endpoint="tcp://127.0.0.1:*"),
    ), extractors=Extractors(None, Quiet(), Quiet()),  # type: ignore[arg-type]
       model=LoadedModel(engine, None))  # fmt: skip
    started = Pipeline.start

    def start_then_fail(self: Pipeline, **_kwargs) -> None:
        started(self)  # the threads run ...
        raise KeyboardInterrupt  # ... and Ctrl-C arrives before start returns

    monkeypatch.setattr(Pipeline, "start", start_then_fail)
    with pytest.raises(KeyboardInterrupt):
        session.start()
    assert session.publisher is not None and session.publisher._socket.closed
    assert not any(t.is_alive() for t in session.pipeline._threads)
    assert all(front.voice.closed for front in front_ends)


def test_stopping_mid_stream_releases_openSMILE(engine, front_ends) -> None:
    p = pipeline(NoiseSource(None), engine)
    p.start()
    try:
        deadline = time.monotonic() + 30
        while p.stats.steps_published < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.stats.steps_published >= 5 and not p.finished.is_set()
    finally:
        p.stop()
    assert_released(front_ends)


def test_a_failing_audio_worker_releases_openSMILE(engine, front_ends, monkeypatch) -> None:
    pushed = AudioFrontEnd.push

    def failing_push(self: AudioFrontEnd, block: AudioBlock):  # noqa: ANN202
        if block.seq == 5:
            raise RuntimeError("the audio device sent garbage")
        return pushed(self, block)

    monkeypatch.setattr(AudioFrontEnd, "push", failing_push)
    p = pipeline(NoiseSource(3.0), engine)
    p.start()
    try:
        assert p.wait(30)  # the worker's failure ends the session
    finally:
        p.stop()
    assert "the audio device sent garbage" in (p.stats.last_error or "")
    assert_released(front_ends)


def noise_blocks(seconds: float) -> list[AudioBlock]:
    rng = np.random.default_rng(2)
    return audio_blocks((0.001 * rng.standard_normal(round(seconds * SAMPLE_RATE_HZ))).astype(
        np.float32))  # fmt: skip


def test_replay_releases_openSMILE_at_the_end_and_on_error(front_ends) -> None:
    quiet = Extractors(None, Quiet(), Quiet())  # type: ignore[arg-type]
    steps = extract(iter(noise_blocks(1.0)), quiet, has_video=False, has_audio=True).steps
    assert len(steps) == 10
    assert_released(front_ends)

    def broken_file():
        yield from noise_blocks(0.5)
        raise OSError("the file ends in garbage")

    front_ends.clear()
    with pytest.raises(OSError, match="garbage"):
        extract(broken_file(), quiet, has_video=False, has_audio=True)
    assert_released(front_ends)
