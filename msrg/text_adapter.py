"""Low-rank adaptation of the sentence encoder (MiniLM or MPNet) to sentiment, and applying it.

The encoders (msrg.text_encoders) were trained for semantic similarity, not affect: a ridge
regression on a frozen sentence embedding is the baseline the model has to beat, and MSRG's text
branch would see the same frozen vectors. Fine-tuning the encoder on the training transcripts
lets the text features themselves carry sentiment. To keep the shipped checkpoint small and the base weights untouched,
the encoder is adapted with low-rank deltas (LoRA, Hu et al. 2021): each adapted linear layer W
becomes W + B A with A (r, in) and B (out, r), r small. Training learns A and B only; afterwards
the delta is folded into W, so inference costs exactly what the base encoder costs.

An adapter is a plain dict stored inside the MSRG checkpoint (`text_adapter`), because the text
features the model was trained on were computed with it: live extraction, dataset building and
evaluation must all embed with the same adapter. Its `digest` keys feature caches. Its `encoder`
names the encoder it was tuned on; an adapter without one is MiniLM's (the format's name is from
when MiniLM was the only encoder, and stays so that those adapters still load).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from msrg.text_encoders import MINILM, TextEncoder, UnknownEncoderError, text_encoder

ADAPTER_FORMAT = "affect-monitor/minilm-lora"


class AdapterError(ValueError):
    """An adapter that does not fit the encoder it is applied to; one line."""


class LowRankLinear(nn.Module):
    """y = base(x) + (x A^T B^T) * scale. B starts at zero, so training starts from the base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def delta(self) -> torch.Tensor:
        """(out, in) weight delta, scale folded in."""
        return (self.lora_b @ self.lora_a) * self.scale


def _layers(bert: nn.Module) -> list[nn.Module]:
    try:
        return list(bert.encoder.layer)
    except AttributeError:
        raise AdapterError(
            "the text encoder is not a BERT-style model (no encoder.layer)"
        ) from None


def insert_low_rank(
    bert: nn.Module, rank: int, alpha: float, layers: list[int], encoder: TextEncoder = MINILM
) -> dict[str, LowRankLinear]:
    """Freeze `bert` and wrap the encoder's lora_targets in the given layer indices; returns
    {weight name: module}.

    Names are those of the base weights in `bert.named_parameters()`, e.g.
    `encoder.layer.5.attention.self.query.weight`.
    """
    for p in bert.parameters():
        p.requires_grad = False
    blocks = _layers(bert)
    wrapped: dict[str, LowRankLinear] = {}
    for i in layers:
        if not 0 <= i < len(blocks):
            raise AdapterError(f"layer {i} does not exist (the encoder has {len(blocks)})")
        for target in encoder.lora_targets:
            parent_path, leaf = target.rsplit(".", 1)
            try:
                parent = blocks[i].get_submodule(parent_path)
            except AttributeError:
                raise AdapterError(
                    f"the text encoder has no {target} in layer {i} (is it {encoder.model}?)"
                ) from None
            base = getattr(parent, leaf)
            module = LowRankLinear(base, rank, alpha)
            setattr(parent, leaf, module)
            wrapped[f"encoder.layer.{i}.{target}.weight"] = module
    return wrapped


def adapter_from(
    wrapped: dict[str, LowRankLinear], meta: dict[str, Any], encoder: TextEncoder = MINILM
) -> dict[str, Any]:
    """The serialisable adapter: low-rank factors (scale folded into B), a content digest and
    the encoder it adapts."""
    factors = {
        name: (m.lora_a.detach().cpu().clone(), (m.lora_b * m.scale).detach().cpu().clone())
        for name, m in sorted(wrapped.items())
    }
    return {"format": ADAPTER_FORMAT, "encoder": encoder.name, "factors": factors,
            "meta": dict(meta), "digest": _digest(factors)}  # fmt: skip


def adapter_encoder(adapter: dict[str, Any] | None) -> TextEncoder:
    """The encoder an adapter was tuned on; MiniLM for none or one that names none."""
    return text_encoder(None if adapter is None else adapter.get("encoder"))


def describe_text_model(encoder: TextEncoder, digest: str) -> str:
    """E.g. 'all-mpnet-base-v2 with sentiment adapter 6b09...' ('(base)' for digest ''), for logs
    and messages."""
    return f"{encoder.model} " + (f"with sentiment adapter {digest}" if digest else "(base)")


def _digest(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for name in sorted(factors):
        h.update(name.encode())
        for t in factors[name]:
            h.update(t.to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def check_adapter(adapter: Any) -> dict[str, Any]:
    if not isinstance(adapter, dict) or adapter.get("format") != ADAPTER_FORMAT:
        raise AdapterError("the text adapter is not in the affect-monitor LoRA format")
    factors = adapter.get("factors")
    if not isinstance(factors, dict) or not factors:
        raise AdapterError("the text adapter holds no factors")
    if adapter.get("digest") != _digest(factors):
        raise AdapterError("the text adapter's digest does not match its factors (corrupt file)")
    try:
        adapter_encoder(adapter)
    except UnknownEncoderError as exc:
        raise AdapterError(f"the text adapter is for {exc}") from None
    return adapter


@torch.no_grad()
def merge_adapter(bert: nn.Module, adapter: dict[str, Any]) -> None:
    """Add B A to each named base weight of `bert` in place (the base stays a plain BERT)."""
    check_adapter(adapter)
    params = dict(bert.named_parameters())
    for name, (a, b) in adapter["factors"].items():
        weight = params.get(name)
        if weight is None:
            raise AdapterError(f"the text encoder has no weight {name} for the adapter")
        if weight.shape != (b.shape[0], a.shape[1]):
            raise AdapterError(
                f"adapter factor for {name} is {b.shape[0]}x{a.shape[1]}, "
                f"the weight is {tuple(weight.shape)}"
            )
        weight.add_((b.to(weight.dtype) @ a.to(weight.dtype)).to(weight.device))


def adapter_digest(adapter: dict[str, Any] | None) -> str:
    """'' for the base encoder; keys caches of text features."""
    return "" if adapter is None else str(adapter["digest"])


def load_adapter(path: str | Path) -> dict[str, Any]:
    """An adapter from a file written by lab.tune_text, or the one inside an MSRG checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(
            f"text adapter {path} does not exist; write one with python -m lab.tune_text"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise AdapterError(f"text adapter {path} is unreadable ({type(exc).__name__})") from None
    if isinstance(payload, dict) and "text_adapter" in payload:  # an MSRG checkpoint
        payload = payload["text_adapter"]
        if payload is None:
            raise AdapterError(
                f"checkpoint {path} carries no text adapter (it uses the base encoder)"
            )
    try:
        return check_adapter(payload)
    except AdapterError as exc:
        raise AdapterError(f"{path}: {exc}") from None
