"""The sentence encoder on ONNX Runtime: the live word embedder's default back-end.

Why: the word embedder encodes one sentence per prefix of an utterance (realtime/extractors/
words.py), which with MPNet was the largest cost of an utterance result on a 2-core AVX2 host.
ONNX Runtime's fused attention and layer norms run the same network faster than eager PyTorch,
and sorting prefixes by length into small batches stops short prefixes being padded to the
longest one. Measured with `python -m benchmarks.extractors` (docs/performance.md).

What runs: the encoder's transformer (with the checkpoint's text adapter merged) exported once
to `<cache>/text-encoders/<encoder>-<adapter digest>/encoder.onnx`, the token vectors mean-pooled
over the attention mask and L2-normalised here, as sentence-transformers' Pooling('mean') and
Normalize modules do. The export is checked and rebuilt like the engines' artefacts
(engines/artefacts.py: a manifest with the key it was built for and the file's digest). Only
mean-pooled encoders are accepted: both encoders this program knows are. Vectors are always
L2-normalised, as the word embedder has always asked sentence-transformers for.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from engines.artefacts import ArtefactSpec, ensure
from engines.base import ArtefactError
from msrg.text_encoders import TextEncoder
from realtime.cache import CACHE_ENV_VAR, cache_dir
from realtime.extractors.text_weights import TextModelError

log = logging.getLogger(__name__)

OPSET = 17
FILE = "encoder.onnx"


def _check_pooling(st_model: Any) -> None:
    """`st_model` (a SentenceTransformer) must be transformer -> mean pooling [-> normalize];
    TextModelError otherwise."""
    names = [type(m).__name__ for m in st_model]
    pooling = st_model[1] if len(names) > 1 else None  # a lone transformer has none
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None and callable(getattr(pooling, "get_pooling_mode_str", None)):
        mode = pooling.get_pooling_mode_str()
    if names[:2] != ["Transformer", "Pooling"] or mode != "mean" or names[2:] not in ([], ["Normalize"]):
        raise TextModelError(
            f"the sentence encoder is {' -> '.join(names)} ({mode} pooling); the ONNX text "
            "back-end runs mean-pooled encoders only: use WordEmbedderOptions(backend='torch')"
        )


def _spec(encoder: TextEncoder, adapter_digest: str, max_tokens: int) -> ArtefactSpec:
    import onnx
    import torch

    return ArtefactSpec(
        kind=f"{encoder.name}-{adapter_digest or 'base'}",
        files=(FILE,),
        key={
            "encoder": encoder.model,
            "adapter": adapter_digest,
            "max_tokens": max_tokens,
            "opset": OPSET,
            "traced_with": "padded mask",
            "exporter": {"torch": torch.__version__, "onnx": onnx.__version__},
        },
    )


def _export(transformer: Any, folder: Path) -> dict[str, Any]:
    """Write the transformer's token vectors as FILE in `folder` (batch and length dynamic)."""
    import torch

    class TokenVectors(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.ones((2, 5), dtype=torch.long)  # B=2, T=5: neither may be specialised to 1
    # Traced with padding in the mask: an all-ones mask may take a path that drops it.
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings(), _quiet_torch_onnx():
        warnings.simplefilter("ignore")  # deprecation and tracer chatter about the HF model
        try:
            torch.onnx.export(
                TokenVectors(transformer.eval()), (ids, mask), str(folder / FILE),
                input_names=["input_ids", "attention_mask"], output_names=["token_vectors"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_vectors": axes},
                opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter's own error, as one line
            raise ArtefactError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from None
    return {}


@contextlib.contextmanager
def _quiet_torch_onnx():  # noqa: ANN202
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class OnnxSentenceEncoder:
    """encode(texts) -> (n, dim) float32 sentence vectors, as the SentenceTransformer it was
    built from gives them (to ~1e-6)."""

    def __init__(
        self, st_model: Any, encoder: TextEncoder, adapter_digest: str, *, threads: int = 1,
        folder: Path | None = None,
    ) -> None:  # fmt: skip
        import onnxruntime as ort

        _check_pooling(st_model)
        transformer = st_model[0]
        self.tokenizer = transformer.tokenizer
        self.max_tokens = int(st_model.max_seq_length)
        self.lower_case = bool(getattr(transformer, "do_lower_case", False))
        spec = _spec(encoder, adapter_digest, self.max_tokens)
        try:
            folder = folder or cache_dir() / "text-encoders" / spec.kind
        except OSError as exc:
            raise TextModelError(
                f"cannot use the cache folder for the sentence encoder's ONNX export ({exc}); "
                f"set {CACHE_ENV_VAR} to a writable folder"
            ) from None
        try:
            ensure(folder, spec, lambda tmp: _export(transformer.auto_model, tmp))
        except ArtefactError as exc:
            raise TextModelError(
                f"the sentence encoder's ONNX export in {folder}: {exc} ({CACHE_ENV_VAR} "
                "names the cache folder)"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the streams' threads already fill the cores
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(folder / FILE), options, providers=["CPUExecutionProvider"]
        )
        self.path = folder / FILE
        log.info("text encoder %s on ONNX Runtime (%s)", encoder.model, self.path)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Texts sorted by length and encoded `batch_size` at a time, returned in input order."""
        texts = [t.strip().lower() if self.lower_case else t.strip() for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, vector in zip(chunk, self._encode_batch([texts[i] for i in chunk])):
                out[i] = vector
        return np.stack(out) if out else np.zeros((0, 0), np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation="longest_first",
                                max_length=self.max_tokens, return_tensors="np")  # fmt: skip
        ids = tokens["input_ids"].astype(np.int64)
        mask = tokens["attention_mask"].astype(np.int64)
        (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        weights = mask[..., None].astype(np.float32)
        pooled = (vectors * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        # Always L2-normalised, as the word embedder asks sentence-transformers for.
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)
