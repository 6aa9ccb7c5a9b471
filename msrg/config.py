"""MSRG architecture options, validated once and stored inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from contract.names import (  # noqa: F401  (re-exported for the model's users)
    EXPRESSION_LABELS,
    FACE_GEOMETRY,
    LIVE_AUDIO_DIM,
    LIVE_TEXT_DIM,
    LIVE_VISUAL_DIM,
    MODALITIES,
)


@dataclass(frozen=True)
class MSRGConfig:
    text_dim: int = LIVE_TEXT_DIM
    audio_dim: int = LIVE_AUDIO_DIM
    visual_dim: int = LIVE_VISUAL_DIM
    d_model: int = 128  # d in the brief
    fe_layers: int = 1  # causal GRU layers per modality in FE
    window: int = 10  # W: JCAF causal window in steps (1 s at 10 Hz)
    jcaf_k: int = 32  # k: JCAF hidden width
    dropout: float = 0.1
    ulf_hidden: int = 64  # width of each modality's utterance projection in ULF
    max_utterance_steps: int = 600  # L: fixed utterance length for exported engines (60 s at 10 Hz)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "dropout":
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"MSRGConfig.dropout must be in [0, 1), got {value}")
            elif not isinstance(value, int) or value < 1:
                raise ValueError(f"MSRGConfig.{f.name} must be a positive integer, got {value!r}")

    @property
    def dims(self) -> dict[str, int]:
        return {"text": self.text_dim, "audio": self.audio_dim, "visual": self.visual_dim}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MSRGConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MSRGConfig fields in checkpoint: {', '.join(unknown)}")
        return cls(**data)

    def with_dims(self, text: int, audio: int, visual: int) -> MSRGConfig:
        return replace(self, text_dim=text, audio_dim=audio, visual_dim=visual)


PRESETS: dict[str, MSRGConfig] = {
    "live": MSRGConfig(),
    # MMSA aligned feature files (BERT text, COVAREP/OpenFace subsets)
    "mosi": MSRGConfig(text_dim=768, audio_dim=5, visual_dim=20),
    "mosei": MSRGConfig(text_dim=768, audio_dim=74, visual_dim=35),
}


def preset(name: str) -> MSRGConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
