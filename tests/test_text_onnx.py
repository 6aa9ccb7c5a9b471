"""The sentence encoder on ONNX Runtime (realtime/extractors/text_onnx.py), the live default:
the same vectors as sentence-transformers on PyTorch, adapter included, exported once into the
cache and rebuilt when the export is damaged."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from msrg.text_encoders import MINILM
from realtime.cache import CACHE_ENV_VAR
from realtime.extractors.text_onnx import FILE, _check_pooling
from realtime.extractors.words import TextModelError, WordEmbedder, WordEmbedderOptions
from realtime.types import Word

SENTENCE = "i did not think the ending would work but honestly it was the best part of the film"
WORDS = [Word(w, 0.3 * i, 0.3 * i + 0.2, 0.9) for i, w in enumerate(SENTENCE.split())]


@pytest.fixture(scope="module")
def torch_embedder() -> WordEmbedder:
    return WordEmbedder(WordEmbedderOptions(backend="torch", cache_size=0))


@pytest.fixture(scope="module")
def adapter(torch_embedder: WordEmbedder, random_adapter) -> dict:  # noqa: ANN001
    """A random non-zero adapter on MiniLM's last two blocks, as lab.tune_text writes one."""
    return random_adapter(torch_embedder, seed=3, rank=4, alpha=8.0, layers=[4, 5])


def vectors(embedder: WordEmbedder) -> np.ndarray:
    return np.stack([w.embedding for w in embedder.embed_words(WORDS)])


@pytest.mark.parametrize("adapted", [False, True])
def test_onnx_gives_the_vectors_pytorch_gives(tmp_path, monkeypatch, adapter, adapted) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    chosen = adapter if adapted else None
    ours = WordEmbedder(WordEmbedderOptions(adapter=chosen, cache_size=0))
    theirs = WordEmbedder(WordEmbedderOptions(adapter=chosen, backend="torch", cache_size=0))
    a, b = vectors(ours), vectors(theirs)
    assert a.shape == (len(WORDS), MINILM.dim) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.abs(ours.embed_sentence(SENTENCE) - a[-1]).max() < 1e-6  # the whole-sentence vector
    assert ours._model is None  # PyTorch's copy of the weights is let go
    folders = [p.parent.name for p in tmp_path.glob(f"text-encoders/*/{FILE}")]
    assert folders == ([f"minilm-{adapter['digest']}"] if adapted else ["minilm-base"])


def test_the_export_is_reused_and_rebuilt_when_damaged(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    first = vectors(WordEmbedder(WordEmbedderOptions(cache_size=0)))
    (path,) = tmp_path.glob(f"text-encoders/*/{FILE}")
    built = path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = vectors(WordEmbedder(WordEmbedderOptions(cache_size=0)))
    assert path.stat().st_mtime_ns == built and "building" not in caplog.text
    assert np.array_equal(first, again)
    path.write_bytes(path.read_bytes()[:1000])  # a truncated file, as a full disk leaves one
    caplog.clear()
    with caplog.at_level(logging.INFO):
        rebuilt = vectors(WordEmbedder(WordEmbedderOptions(cache_size=0)))
    assert "corrupt" in caplog.text and "building" in caplog.text
    assert np.array_equal(first, rebuilt)


def test_an_unwritable_cache_is_one_line_naming_it(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV_VAR, str(blocker / "cache"))
    with pytest.raises(TextModelError, match=f"set {CACHE_ENV_VAR} to a writable folder") as info:
        WordEmbedder(WordEmbedderOptions(cache_size=0))
    assert "\n" not in str(info.value)


def test_only_mean_pooled_encoders_are_run() -> None:
    def model(*modules):  # noqa: ANN001, ANN202 - stands in for a SentenceTransformer's modules
        return [type(name, (), {"pooling_mode": mode})() for name, mode in modules]

    _check_pooling(model(("Transformer", None), ("Pooling", "mean"), ("Normalize", None)))
    _check_pooling(model(("Transformer", None), ("Pooling", "mean")))
    with pytest.raises(TextModelError, match="mean-pooled encoders only.*backend='torch'"):
        _check_pooling(model(("Transformer", None), ("Pooling", "cls"), ("Normalize", None)))
    with pytest.raises(TextModelError, match="mean-pooled"):
        _check_pooling(model(("Transformer", None), ("Pooling", "mean"), ("Dense", None)))
    with pytest.raises(TextModelError, match="mean-pooled"):  # no pooling module at all
        _check_pooling(model(("Transformer", None)))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="backend must be one of onnx, torch"):
        WordEmbedderOptions(backend="tensorrt")
    with pytest.raises(ValueError, match="threads"):
        WordEmbedderOptions(threads=0)
    assert WordEmbedderOptions().backend == "onnx"  # the live default
