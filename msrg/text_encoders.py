"""The sentence encoders the text branch can be trained on, as facts: name, width, depth, and the
linear layers a sentiment adapter (msrg.text_adapter) adjusts in each block.

The encoder is a property of a checkpoint: its text adapter names the encoder it was tuned on,
and an adapter without a name is MiniLM's (every checkpoint written before MPNet was added). The
live word embedder, the dataset builder and the evaluation read the name from there, so a
checkpoint always meets the text features it was trained on. Where the weights come from is the
live side's business (realtime/extractors/text_weights.py)."""

from __future__ import annotations

from dataclasses import dataclass

from contract.names import LIVE_TEXT_DIM


class UnknownEncoderError(ValueError):
    """A name that is not one of ENCODERS; one line."""


@dataclass(frozen=True)
class TextEncoder:
    name: str  # what checkpoints and command lines call it
    model: str  # the sentence-transformers model, for people
    dim: int  # sentence embedding width
    layers: int  # transformer blocks
    lora_targets: tuple[str, ...]  # linear layers of one block, relative to the block

    @property
    def all_layers(self) -> tuple[int, ...]:
        return tuple(range(self.layers))


MINILM = TextEncoder(
    name="minilm", model="all-MiniLM-L6-v2", dim=LIVE_TEXT_DIM, layers=6,
    lora_targets=("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense", "intermediate.dense", "output.dense"),
)  # fmt: skip
MPNET = TextEncoder(
    name="mpnet", model="all-mpnet-base-v2", dim=768, layers=12,
    lora_targets=("attention.attn.q", "attention.attn.k", "attention.attn.v",
                  "attention.attn.o", "intermediate.dense", "output.dense"),
)  # fmt: skip
ENCODERS = {e.name: e for e in (MINILM, MPNET)}
DEFAULT_ENCODER = MINILM.name  # what a checkpoint or adapter that names none was built with


def text_encoder(name: str | None) -> TextEncoder:
    """The encoder called `name` (None: the default, MiniLM)."""
    key = DEFAULT_ENCODER if name is None else name
    try:
        return ENCODERS[key]
    except KeyError:
        raise UnknownEncoderError(
            f"unknown text encoder {key!r}; this program knows {', '.join(ENCODERS)}"
        ) from None
