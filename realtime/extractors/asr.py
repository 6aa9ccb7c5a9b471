"""Speech recognition: faster-whisper (Whisper base by default, `AsrOptions.model`; int8 on CPU),
and its requests and results.

`SpeechRecognizer.transcribe` is synchronous and deterministic (greedy, temperature 0, no
conditioning on earlier text). Decoding is bounded (`max_tokens_per_s`), and a result that loops
(one word LOOP_RUN times in a row) is decoded again with the full window, then collapsed. The worker thread that runs it off the capture and step paths is
realtime/extractors/asr_worker.py.

Audio context: Whisper's encoder is run on the segment plus `window_pad_s` of padding instead of
the fixed 30 s window faster-whisper always pads to (CTranslate2 accepts any length up to 30 s;
whisper.cpp calls this the audio context). The encoder was ~70 % of a call on a 3 s segment.
Measured on 140 CMU-MOSI dev sentences spoken by espeak-ng, one thread, on a busy machine:
real-time factor 0.37 -> 0.14 with 10 s of padding, word error rate 23.5 % -> 22.5 % (no worse;
5 s: 0.105, 22.6 %). benchmarks/extractors.py on a quiet machine: 0.216 -> 0.098, same words.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.extractors.whisper_weights import (
    ASR_MODEL_CHOICES,
    DEFAULT_ASR_MODEL,
    AsrModelError,
    ensure_model_dir,
    model_package,
)
from realtime.types import SAMPLE_RATE_HZ, Word

log = logging.getLogger(__name__)

__all__ = [
    "ASR_MODEL_CHOICES",
    "AsrModelError",
    "AsrOptions",
    "AsrRequest",
    "AsrResult",
    "SpeechRecognizer",
]


@dataclass(frozen=True)
class AsrOptions:
    # Which Whisper (realtime/extractors/whisper_weights.py: base, small, tiny.en); the choice
    # is measured in docs/eval/asr-model-rule.md.
    model: str = DEFAULT_ASR_MODEL
    language: str = "en"
    beam_size: int = 1  # greedy: ~20 % faster than beam 5 on base, same words on clear speech
    # CTranslate2 intra-op threads. One: on a busy 2-core machine two threads measured 2x slower
    # (they wait on each other while capture, face and voice hold the other core).
    cpu_threads: int = 1
    # Calls CTranslate2 runs at once when several threads transcribe (realtime.multi's streams
    # share one model); one runs them in turn.
    workers: int = 1
    compute_type: str = "int8"
    model_dir: Path | None = None  # None: the joined package weights in the cache folder
    no_speech_threshold: float = 0.6  # Whisper's own: skip windows it judges silent
    # Encode the segment plus this much padding, not Whisper's fixed 30 s (None: the full 30 s).
    window_pad_s: float | None = 10.0
    # At most this many tokens per second of audio (plus MIN_TOKENS). Greedy Whisper can fall
    # into a loop on real speech ("... by the door door door ...", 440 tokens and 97 s of CPU for
    # one 3.5 s RAVDESS clip); people say at most ~5 words a second, ~1.3 tokens a word.
    max_tokens_per_s: float = 8.0

    def __post_init__(self) -> None:
        if self.model not in ASR_MODEL_CHOICES:
            raise ValueError(
                f"unknown ASR model {self.model!r}; choose one of {', '.join(ASR_MODEL_CHOICES)}"
            )
        if self.beam_size < 1 or self.cpu_threads < 0 or self.workers < 1:
            raise ValueError(
                "AsrOptions.beam_size and workers must be >= 1 and cpu_threads >= 0"
            )
        if self.max_tokens_per_s <= 0:
            raise ValueError("AsrOptions.max_tokens_per_s must be > 0")
        if self.window_pad_s is not None and not 0 <= self.window_pad_s <= 30:
            raise ValueError("AsrOptions.window_pad_s must be in [0, 30] seconds or None")


FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s at 100 mel frames per second
MIN_TOKENS = 10  # timestamps and a short word or two, whatever the duration
MAX_TOKENS = 440  # Whisper's 448-token context less its prompt


def max_new_tokens(duration_s: float, per_s: float) -> int:
    """The decoding budget of a segment of `duration_s` seconds."""
    return int(min(MAX_TOKENS, MIN_TOKENS + np.ceil(per_s * duration_s)))


def window_frames(duration_s: float, pad_s: float | None) -> int:
    """Mel frames the encoder sees for a segment: its length plus padding, whole seconds, at
    most Whisper's 30 s."""
    if pad_s is None:
        return FULL_WINDOW_FRAMES
    return int(min(FULL_WINDOW_FRAMES, 100 * np.ceil(duration_s + pad_s)))


def _windowed_model_class():  # noqa: ANN202 - a subclass of faster_whisper.WhisperModel
    from faster_whisper import WhisperModel

    class WindowedWhisper(WhisperModel):
        """WhisperModel whose encoder input is cut to the current call's window. faster-whisper
        pads every window's features to 3000 frames before `encode`; the frames past the
        window are padding, dropped here. The window is per thread: one model serves several
        ASR workers (realtime/multi.py)."""

        _window = threading.local()

        def encode(self, features):  # noqa: ANN001, ANN201 - faster-whisper's own types
            frames = getattr(self._window, "frames", None)
            if frames is not None and features.shape[-1] > frames:
                features = features[..., :frames]
            return super().encode(features)

    return WindowedWhisper


class SpeechRecognizer:
    """Whisper (`options.model`) on the CPU. transcribe((N,) float32 16 kHz, t_start_s) -> list[Word]."""

    def __init__(self, options: AsrOptions | None = None) -> None:
        self.options = options or AsrOptions()
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise AsrModelError(
                "faster-whisper is not installed; `pip install faster-whisper`"
            ) from None
        name = self.options.model
        folder = self.options.model_dir or ensure_model_dir(model=name)
        self.model_dir = Path(folder)
        model_class = (
            _windowed_model_class() if self.options.window_pad_s is not None else WhisperModel
        )
        try:
            self._model = model_class(
                str(self.model_dir),
                device="cpu",
                compute_type=self.options.compute_type,
                cpu_threads=self.options.cpu_threads,
                num_workers=self.options.workers,
                local_files_only=True,  # a folder path; never a hub lookup
            )
        except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2: a truncated model.bin
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AsrModelError(
                f"Whisper {name} weights in {self.model_dir} cannot be read ({first}); the "
                f"package is broken or incomplete: reinstall it (`{model_package(name).install}`)"
                " or choose another --asr-model"
            ) from None
        log.info("speech recognition: Whisper %s (%s)", name, self.model_dir)

    def transcribe(self, samples: np.ndarray, t_start_s: float) -> list[Word]:
        """Words of one speech segment, with times on the stream clock (t_start_s + offset)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)  # (N,) at SAMPLE_RATE_HZ
        duration_s = len(audio) / SAMPLE_RATE_HZ
        if duration_s < 0.1:
            return []
        words = self._decode(audio, t_start_s, duration_s, self.options.window_pad_s)
        if looped(words) and self.options.window_pad_s is not None:
            # A cut window can send greedy decoding into a loop on real speech where Whisper's
            # full 30 s window does not (seen on quiet RAVDESS clips); retry once with it.
            words = self._decode(audio, t_start_s, duration_s, None)
        return collapse_loops(words)

    def _decode(
        self, audio: np.ndarray, t_start_s: float, duration_s: float, pad_s: float | None
    ) -> list[Word]:
        if self.options.window_pad_s is not None:  # the windowed model class
            self._model._window.frames = window_frames(duration_s, pad_s)
        segments, _info = self._model.transcribe(
            audio,
            language=self.options.language,
            beam_size=self.options.beam_size,
            temperature=0.0,  # no sampling fallback: replay must give the same words
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,  # segments are cut by our own VAD
            no_speech_threshold=self.options.no_speech_threshold,
            max_new_tokens=max_new_tokens(duration_s, self.options.max_tokens_per_s),
        )
        words: list[Word] = []
        for segment in segments:  # a generator: decoding happens while iterating
            for w in segment.words or ():
                text = w.word.strip()
                if not text or w.start >= duration_s:  # placed in the padding: not heard
                    continue
                start_s = min(max(w.start, 0.0), duration_s)
                end_s = min(max(w.end, start_s), duration_s)
                words.append(
                    Word(text, t_start_s + start_s, t_start_s + end_s, float(w.probability))
                )
        return words


LOOP_RUN = 4  # this many times the same word in a row is a decoding loop, not speech


def _bare(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def looped(words: list[Word]) -> bool:
    """Whether the same word comes LOOP_RUN or more times in a row."""
    run = 1
    for a, b in zip(words, words[1:]):
        run = run + 1 if _bare(a.text) and _bare(a.text) == _bare(b.text) else 1
        if run >= LOOP_RUN:
            return True
    return False


def collapse_loops(words: list[Word]) -> list[Word]:
    """Each run of LOOP_RUN or more identical words kept as its first word."""
    out: list[Word] = []
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words) and _bare(words[j].text) and _bare(words[j].text) == _bare(words[i].text):
            j += 1
        out.extend(words[i : i + 1] if j - i >= LOOP_RUN else words[i:j])
        i = j
    return out


@dataclass(frozen=True)
class AsrRequest:
    segment_id: int
    t_start_s: float  # stream time of samples[0]
    samples: np.ndarray  # (N,) float32 at SAMPLE_RATE_HZ
    final: bool  # False: a partial of a segment that is still growing
    speculative: bool = False  # the final's likely audio, sent at a pause onset (never delivered)

    def __post_init__(self) -> None:
        if self.final and self.speculative:
            raise ValueError("an AsrRequest is final or speculative, not both")

    @property
    def t_end_s(self) -> float:
        return self.t_start_s + len(self.samples) / SAMPLE_RATE_HZ

    def same_audio(self, other: AsrRequest) -> bool:
        """Same segment, same first sample time, same samples: Whisper would say the same."""
        return (
            self.segment_id == other.segment_id
            and self.t_start_s == other.t_start_s
            and np.array_equal(self.samples, other.samples)
        )


@dataclass(frozen=True)
class AsrResult:
    segment_id: int
    t_start_s: float
    t_end_s: float
    final: bool
    words: tuple[Word, ...]
    compute_s: float  # wall seconds spent in transcribe
    queued_s: float  # wall seconds between submit and the start of transcribe
    # A final given up (inbox full, or transcription failed): no words, but the segment is closed,
    # so consumers waiting on it move on instead of waiting for ever.
    dropped: bool = False

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)
