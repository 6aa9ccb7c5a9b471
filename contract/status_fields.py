"""The status message's nested records (device health, sanitised counts, how the publisher is
bound, which modalities the model uses) and the names they check against. Stdlib only, like
contract/messages.py, which carries and re-exports them; the JSON Schema describes the same
objects."""

from __future__ import annotations

from dataclasses import dataclass

from contract.message_fields import MessageError, _boolean, _integer, _string
from contract.names import MODALITIES

SOURCE_STATES = ("ok", "lost", "off", "ended")  # off: not configured; ended: a file ran out


@dataclass(frozen=True)
class SourceStates:
    """Capture device health as the pipeline sees it; values from SOURCE_STATES."""

    camera: str
    microphone: str

    def __post_init__(self) -> None:
        for name in ("camera", "microphone"):
            if getattr(self, name) not in SOURCE_STATES:
                raise MessageError(f"sources.{name} must be one of {SOURCE_STATES}")


@dataclass(frozen=True)
class SanitisedCounts:
    """Feature vectors whose NaN/inf values were replaced, per modality, since session start."""

    text: int
    audio: int
    visual: int

    def __post_init__(self) -> None:
        for m in MODALITIES:
            _integer(f"sanitised.{m}", getattr(self, m))


@dataclass(frozen=True)
class Security:
    """How the publisher is bound, so subscribers can warn when data may leak."""

    endpoint: str  # the bound endpoint, e.g. tcp://127.0.0.1:5556
    loopback: bool  # bound to a loopback address only
    curve: bool  # CurveZMQ encryption and client authentication on
    insecure: bool  # the user passed --insecure to bind beyond loopback without keys

    def __post_init__(self) -> None:
        _string("security.endpoint", self.endpoint, non_empty=True, max_len=512)
        for name in ("loopback", "curve", "insecure"):
            _boolean(f"security.{name}", getattr(self, name))

    @property
    def exposed(self) -> bool:
        """Reachable beyond this machine without encryption: the dashboard shows a red warning."""
        return not self.loopback and not self.curve


@dataclass(frozen=True)
class ModelModalities:
    """Which modalities the model uses: "used", or "not used: <why>" (a modality the checkpoint
    did not learn from is masked before the model; `present` still says what the sensors saw)."""

    text: str
    audio: str
    visual: str

    def __post_init__(self) -> None:
        for m in MODALITIES:
            value = _string(f"model_modalities.{m}", getattr(self, m), non_empty=True, max_len=300)
            why = value.removeprefix("not used: ")
            if value != "used" and (why == value or not why or "\n" in why):
                raise MessageError(f"model_modalities.{m} must be 'used' or 'not used: <why>'")
