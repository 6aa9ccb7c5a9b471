"""What the stream core is told: one frozen class per kind of event.

The pipeline's workers make these and hand them to the core thread through one queue; a test or
a file replay can hand the same events to a `StreamCore` directly, without threads. Times named
`*_s` are stream seconds; `avail_s` is when the record's capture became available (stream s).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract import messages
from realtime.extractors.asr import AsrResult
from realtime.extractors.vad import SegmentEnd, SegmentStart
from realtime.types import EmbeddedWord, FaceObservation, SpeechProbability, VoiceFrames


@dataclass(frozen=True)
class FaceAnalysed:
    """One video frame through the face extractor."""

    observation: FaceObservation
    avail_s: float


@dataclass(frozen=True)
class VoiceAnalysed:
    """Voice descriptor frames from the audio front end."""

    frames: VoiceFrames
    avail_s: float


@dataclass(frozen=True)
class SpeechScored:
    """Voice-activity probabilities; the segmenter has decided everything before `decided_until_s`."""

    probabilities: tuple[SpeechProbability, ...]
    decided_until_s: float


@dataclass(frozen=True)
class SegmentOpened:
    """Speech began (backdated to `segment.t_start_s`)."""

    segment: SegmentStart


@dataclass(frozen=True)
class SegmentClosed:
    """A pause (or a forced cut) ended a speech segment; `closed_monotonic_s` times the
    utterance's latency."""

    segment: SegmentEnd
    closed_monotonic_s: float


@dataclass(frozen=True)
class WordsRecognised:
    """A speech recognition result and its embedded words (partial or final)."""

    result: AsrResult
    words: tuple[EmbeddedWord, ...]


@dataclass(frozen=True)
class StreamEnded:
    """A source's video or audio has ended; for audio, at stream time `t_end_s`."""

    kind: str  # "video" or "audio"
    t_end_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("video", "audio"):
            raise ValueError(f"a stream is 'video' or 'audio', got {self.kind!r}")


@dataclass(frozen=True)
class Publish:
    """A message made outside the core (an LSL marker) to send through the core's outlets."""

    message: messages.Message


StreamEvent = (
    FaceAnalysed | VoiceAnalysed | SpeechScored | SegmentOpened | SegmentClosed
    | WordsRecognised | StreamEnded | Publish
)  # fmt: skip
