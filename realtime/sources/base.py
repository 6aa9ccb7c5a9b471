"""The one interface every capture or replay source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from realtime.types import AudioBlock, VideoFrame

# Audio below this rate has lost the speech band above 4 kHz that the voice features and the
# recogniser rely on; anything at or above it is resampled to SAMPLE_RATE_HZ, whatever the rate.
MIN_AUDIO_RATE_HZ = 8_000


class SourceError(RuntimeError):
    """A source could not be opened or read. The message is one line that names the device or file
    and says what to try; callers print it as is, without a traceback."""


@dataclass
class SourceStats:
    frames: int = 0  # video frames delivered
    frames_dropped: int = 0  # frames dropped because the consumer fell behind
    audio_blocks: int = 0  # audio blocks delivered
    audio_dropped: int = 0  # blocks dropped because the consumer fell behind
    audio_overflows: int = 0  # overflows reported by the audio device
    reopens: int = 0  # times a lost device was opened again


class Source(ABC):
    """Delivers timestamped VideoFrame and AudioBlock records on the session's stream clock.

    Live sources capture on their own thread into a bounded drop-oldest queue; replay sources
    may decode on demand in `read` (deterministic, nothing dropped). Verbs: start, read, stop.
    """

    name: str = "source"
    has_video: bool = False
    has_audio: bool = False
    # A live device may deliver nothing this long after opening before that counts as a loss.
    startup_grace_s: float = 0.0

    @abstractmethod
    def start(self) -> None:
        """Open the device or file and begin delivery; raises SourceError with a one-line message."""

    @abstractmethod
    def read(self, timeout_s: float) -> VideoFrame | AudioBlock | None:
        """The next record in capture order, or None if nothing arrived within `timeout_s`."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once a finite source has delivered everything (live sources: after stop)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop delivery, join any thread (with a timeout) and release the device. Idempotent."""

    @abstractmethod
    def stats(self) -> SourceStats:
        """Counters since start."""


def records(source: Source, timeout_s: float = 1.0) -> Iterator[VideoFrame | AudioBlock]:
    """Every record of a started finite source (a file), in order, until it is finished."""
    while True:
        record = source.read(timeout_s)
        if record is not None:
            yield record
        elif source.finished:
            return
