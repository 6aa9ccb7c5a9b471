"""Speculative ASR through the real pipeline (real VAD, Whisper and word embeddings on espeak-ng
speech): recognition starts at a pause onset; a confirmed pause takes the early result over, a
resumed sentence discards it, and the utterances are the same as without speculation.

The clip: a sentence with a 0.4 s gap in it (a pause onset that speech resumes after, shorter
than the 600 ms that closes an utterance), a real pause, a second sentence, a real pause.
espeak-ng ends each wave with ~0.35 s of silence of its own, so the gap adds only 0.05 s. The
pause between the sentences is long (3 s) so that on a loaded 2-core machine, where one Whisper
pass can take 2-3 s, the recogniser is idle again when the second sentence ends.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

from contract import messages
from engines import load_engine
from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG
from realtime.clock import StreamClock
from realtime.extractors import Extractors
from realtime.extractors.asr import AsrRequest
from realtime.extractors.asr_worker import AsrWorker
from realtime.extractors.words import prefixes
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.tts import silence, synthesize_speech, write_wav

FIRST, AFTER_GAP = "The train leaves soon.", "It goes from platform four."
SECOND = "I really love this wonderful day."


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("spec")
    audio = np.concatenate([
        silence(0.5), synthesize_speech(FIRST), silence(0.05), synthesize_speech(AFTER_GAP),
        silence(3.0), synthesize_speech(SECOND), silence(1.2),
    ])  # fmt: skip
    torch.manual_seed(0)
    return {"wav": write_wav(tmp / "speech.wav", audio),
            "checkpoint": save_checkpoint(MSRG().eval(), tmp / "random.pt")}  # fmt: skip


class _Counting:
    """Not a model stand-in: the real recogniser, with its Whisper passes counted."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def transcribe(self, samples: np.ndarray, t_start_s: float):
        self.calls += 1
        return self.inner.transcribe(samples, t_start_s)


class _CountingWords:
    """Not a model stand-in: the real word embedder, with the prefixes each call had to compute
    (those not in its cache) recorded, per call, beside the words it was given."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []
        inner.clear_cache()

    def embed_words(self, words: list):
        fresh = len({p for p in prefixes(words) if p not in self.inner._cache})
        self.calls.append((tuple(w.text for w in words), fresh))
        return self.inner.embed_words(words)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _run(setup: dict, extractors: Extractors, speculative: bool, paced: bool,
         words: _CountingWords | None = None):  # fmt: skip
    clock = StreamClock()
    source = MediaFileSource(MediaFileOptions(setup["wav"], realtime=paced), clock)
    got: list[messages.Message] = []
    counting = _Counting(extractors.recognizer)
    pipeline = Pipeline(
        PipelineOptions(speculative_asr=speculative), [source],
        load_engine("eager", setup["checkpoint"]),
        Extractors(face=None, recognizer=counting, words=words or extractors.words),
        clock=clock, live=False, on_message=got.append,
    )  # fmt: skip
    pipeline.start()
    try:
        assert pipeline.wait(120)
    finally:
        pipeline.stop()
    # Every way out of the audio worker closes the voice extractor: openSMILE's run thread has
    # ended and its handle is freed (realtime/extractors/voice.py names the thread).
    assert not [t for t in threading.enumerate() if t.name == "voice-smile"]
    utterances = [m for m in got if isinstance(m, messages.UtteranceMessage)]
    return utterances, pipeline._asr.stats, counting.calls


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def test_speculation_is_used_at_pauses_discarded_on_resumed_speech_and_changes_nothing(
    setup, extractors
) -> None:
    # Paced at real time, as live audio: the pause onset comes 500 ms of audio before the pause
    # is confirmed, so the speculation is under way or done by then.
    spec_words = _CountingWords(extractors.words)
    spec_utts, spec, spec_calls = _run(setup, extractors, speculative=True, paced=True,
                                       words=spec_words)  # fmt: skip
    plain_words = _CountingWords(extractors.words)
    plain_utts, plain, plain_calls = _run(setup, extractors, speculative=False, paced=False,
                                          words=plain_words)  # fmt: skip

    assert len(plain_utts) == 2 and plain.speculations == 0 and plain_calls == 2
    # Identical utterances: same spans, same transcript (the words of the same audio).
    key = lambda u: (u.utterance_id, u.t_start, u.t_end, u.transcript)
    assert [key(u) for u in spec_utts] == [key(u) for u in plain_utts]
    # The gap's guess held only the first half; the final has the words after the gap too.
    heard = _words(spec_utts[0].transcript)
    assert "platform" in heard or "four" in heard, spec_utts[0].transcript
    assert spec.speculations_discarded >= 1  # the gap's onset: speech resumed
    # A confirmed pause takes its speculation over (a speculation still queued behind other
    # work is simply transcribed as the final, once): no final audio is transcribed twice.
    assert spec.speculations_used >= 1
    assert spec.finals == 2 and spec.errors == 0
    assert spec_calls == spec.speculations + spec.finals - spec.speculations_used
    # A kept speculation's words are embedded while the pause is confirmed: when a final takes
    # them over, its own embedding finds every prefix computed (the utterance does not wait for
    # the sentence encoder). Without speculation every final computes its prefixes.
    finals = [w for w, _ in plain_words.calls]
    assert [n > 0 for _, n in plain_words.calls] == [True, True]
    # (A speculation still running when its pause is confirmed is delivered at once, without
    # that head start; which case happens depends on the machine's load, so both may.)
    taken_over = [n for i, (w, n) in enumerate(spec_words.calls)
                  if w in finals and any(w == v for v, _ in spec_words.calls[:i])]  # fmt: skip
    assert all(n == 0 for n in taken_over), spec_words.calls


def test_a_kept_speculation_is_handed_over_before_its_final_arrives(extractors) -> None:
    """The worker gives a speculation's words to `on_speculation` once it is kept, then delivers
    the same words as the final, without a second Whisper pass."""
    audio = synthesize_speech(SECOND)
    kept: list = []
    finals: list = []
    ready, delivered = threading.Event(), threading.Event()
    worker = AsrWorker(
        _Counting(extractors.recognizer),
        on_result=lambda r: (finals.append(r), delivered.set()),
        on_speculation=lambda words: (kept.append(words), ready.set()),
    )  # fmt: skip
    worker.start()
    try:
        worker.submit(AsrRequest(7, 0.0, audio, final=False, speculative=True))
        assert ready.wait(120), "the speculation was never handed over"
        worker.submit(AsrRequest(7, 0.0, audio, final=True))
        assert delivered.wait(120)
    finally:
        worker.stop()
    assert len(kept) == 1 and "love" in _words(" ".join(w.text for w in kept[0])), kept
    assert len(finals) == 1 and finals[0].final and finals[0].words == kept[0]
    assert worker.stats.speculations_used == 1 and worker._recognizer.calls == 1


def test_speculation_only_where_input_is_paced(tmp_path) -> None:
    """A file replayed as fast as possible has no latency to win: its session turns speculation
    off; devices, the demo and --realtime files keep it."""
    from realtime.session import InputOptions

    clip = tmp_path / "clip.wav"
    assert not InputOptions(video=clip).paced
    assert InputOptions(video=clip, realtime=True).paced
    assert InputOptions(demo=True).paced
    assert InputOptions(camera=0).paced
