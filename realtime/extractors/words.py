"""Causal contextual word embeddings with a sentence encoder: all-MiniLM-L6-v2 by default, or
all-mpnet-base-v2 (msrg.text_encoders; the checkpoint's text adapter names the one it needs).

Causality by prefixes: word i of an utterance is embedded as the sentence "w1 ... wi" (mean
pooling, L2-normalised). So a word's vector depends on itself and earlier words only, by
construction, and training (dataset building) and live use compute the same thing. The last
word's vector is the sentence embedding of the whole utterance, which the utterance path reuses.

Why not one pass with a causal attention mask: the encoders were trained bidirectionally, so masking
its attention gives vectors it never learned to produce. Prefixes cost O(n^2) tokens, but
utterances are short (under 30 s, so ~100 words at most) and, live, each prefix is computed once:
a prefix cache keyed by the prefix text makes growing partial transcripts cost only their new
words, and makes earlier words' vectors bit-identical when later words arrive.
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from msrg.text_encoders import TextEncoder, UnknownEncoderError, text_encoder
from msrg.text_form import transcript_form
from realtime.extractors.text_weights import TextModelError, encoder_model_dir
from realtime.types import EmbeddedWord, Word

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "TextModelError", "WordEmbedder", "WordEmbedderOptions"]

BACKENDS = ("onnx", "torch")


@dataclass(frozen=True)
class WordEmbedderOptions:
    # Prefixes per forward pass, sorted by length. Small batches of like lengths waste little on
    # padding: one utterance's 25 prefixes took 3.7 s in one batch of 64 and 2.8 s in batches of
    # 4 with PyTorch, 2.1 s with ONNX Runtime (MPNet, one thread, 2-core AVX2 host, 2026-12-07).
    batch_size: int = 4
    # "onnx": ONNX Runtime (realtime/extractors/text_onnx.py), exported once into the cache;
    # "torch": sentence-transformers as loaded, for tools that train or inspect the encoder.
    backend: str = "onnx"
    threads: int = 1  # ONNX Runtime intra-op threads (torch: torch.set_num_threads decides)
    cache_size: int = 4096  # prefix texts remembered (each 384 float32 = 1.5 KB with MiniLM)
    model_dir: Path | None = None  # None: the encoder's folder (realtime/extractors/text_weights)
    # Low-rank sentiment deltas from lab.tune_text, merged into the encoder at load (None: the
    # base encoder). The checkpoint carries the one its model was trained with; it names its
    # encoder.
    adapter: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # The encoder without an adapter (None: the adapter's, else MiniLM); with one, it must agree.
    encoder: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.cache_size < 0 or self.threads < 1:
            raise ValueError(
                "WordEmbedderOptions.batch_size and threads >= 1 and cache_size >= 0 required"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"WordEmbedderOptions.backend must be one of {', '.join(BACKENDS)}")

    def text_encoder(self) -> TextEncoder:
        """The encoder these options ask for; TextModelError when it is unknown or disagrees with
        the adapter's."""
        from msrg.text_adapter import adapter_encoder

        try:
            from_adapter = adapter_encoder(self.adapter) if self.adapter is not None else None
            named = text_encoder(self.encoder) if self.encoder is not None else None
        except UnknownEncoderError as exc:
            raise TextModelError(str(exc)) from None
        if from_adapter and named and from_adapter != named:
            raise TextModelError(
                f"the text adapter is for {from_adapter.model}, not {named.model}"
            )
        return from_adapter or named or text_encoder(None)


def encoder_text(text: str) -> str:
    """What the encoder reads for `text`: its training transcripts' form (msrg.text_form), or the
    stripped text itself when nothing of it is left (a word of punctuation alone)."""
    return transcript_form(text) or text.strip()


def prefixes(words: list[Word]) -> list[str]:
    """The sentence word i is embedded as: "w1 ... wi", each word in the training transcripts'
    form (msrg.text_form); also the key of the prefix cache."""
    out, running = [], ""
    for w in words:
        running = f"{running} {transcript_form(w.text)}".strip()
        out.append(running or w.text.strip())  # nothing kept yet: the word as it is
    return out


class WordEmbedder:
    """embed_words(words) -> causal per-word vectors; embed_sentence(text) -> (dim,)."""

    def __init__(self, options: WordEmbedderOptions | None = None) -> None:
        self.options = options or WordEmbedderOptions()
        self.encoder = self.options.text_encoder()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder path must never become a hub id
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise TextModelError(
                "sentence-transformers is not installed; `pip install sentence-transformers`"
            ) from None
        hf_logging.disable_progress_bar()  # a weight-loading bar on stderr is noise in a live app
        folder = self.options.model_dir or encoder_model_dir(self.encoder)
        self._model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self._model.eval()
        if self.options.adapter is not None:
            from msrg.text_adapter import AdapterError, merge_adapter

            try:
                merge_adapter(self._model[0].auto_model, self.options.adapter)
            except AdapterError as exc:
                raise TextModelError(f"cannot apply the text adapter: {exc}") from None
        get_dim = getattr(self._model, "get_embedding_dimension", None)  # renamed in ST 6
        dim = get_dim() if get_dim else self._model.get_sentence_embedding_dimension()
        if dim != self.encoder.dim:
            raise TextModelError(
                f"{folder} gives {dim}-d embeddings, expected {self.encoder.dim} "
                f"({self.encoder.model})"
            )
        self._onnx = None
        if self.options.backend == "onnx":
            from realtime.extractors.text_onnx import OnnxSentenceEncoder

            self._onnx = OnnxSentenceEncoder(
                self._model, self.encoder, self.adapter_digest, threads=self.options.threads
            )
            self._model = None  # the export holds the weights now; PyTorch's copy is let go
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def description(self) -> str:
        """E.g. 'all-mpnet-base-v2 with sentiment adapter 6b09...', for the log."""
        from msrg.text_adapter import describe_text_model

        return describe_text_model(self.encoder, self.adapter_digest)

    @property
    def adapter_digest(self) -> str:
        """'' for the base encoder, else the digest of the merged adapter."""
        from msrg.text_adapter import adapter_digest

        return adapter_digest(self.options.adapter)

    def embed_sentence(self, text: str) -> np.ndarray:
        """(dim,) float32, L2-normalised, of `text` in the training transcripts' form; zeros for
        empty text (no words: the text is absent)."""
        text = encoder_text(text)
        if not text:
            return np.zeros(self.dim, dtype=np.float32)
        return self._embed_texts([text])[0]

    def embed_words(self, words: list[Word]) -> list[EmbeddedWord]:
        """One EmbeddedWord per word; word i's vector is the embedding of words[0..i]."""
        texts = prefixes(words)
        vectors = self._embed_texts(texts) if texts else []
        return [EmbeddedWord(w, v) for w, v in zip(words, vectors)]

    def _embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing and self._onnx is not None:
            encoded = self._onnx.encode(missing, self.options.batch_size)  # (M, dim)
            fresh = dict(zip(missing, encoded))
        elif missing:
            encoded = self._model.encode(
                missing,
                batch_size=self.options.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )  # (M, dim)
            fresh = dict(zip(missing, encoded.astype(np.float32)))
        else:
            fresh = {}
        out = []
        for t in texts:
            vector = self._cache.get(t, fresh.get(t))
            assert vector is not None
            out.append(vector)
            self._remember(t, vector)
        return out

    def _remember(self, text: str, vector: np.ndarray) -> None:
        if self.options.cache_size == 0:
            return
        vector.setflags(write=False)  # shared between calls: records must never be mutated
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > self.options.cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()
