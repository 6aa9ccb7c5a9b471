"""Per-modality feature extractors (face, voice, voice activity, speech recognition, words).

`Extractors` bundles the models one session or one dataset build uses; loading takes seconds, so
it is built once and shared. The submodules are imported only when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtime.extractors.asr import SpeechRecognizer
    from realtime.extractors.face import FaceExtractor
    from realtime.extractors.words import WordEmbedder


@dataclass
class Extractors:
    face: FaceExtractor | None  # None when no video will be processed
    recognizer: SpeechRecognizer
    words: WordEmbedder

    @classmethod
    def load(cls, with_face: bool = True, asr_threads: int | None = None) -> Extractors:
        from realtime.extractors.asr import AsrOptions, SpeechRecognizer
        from realtime.extractors.face import FaceExtractor
        from realtime.extractors.words import WordEmbedder

        asr = AsrOptions() if asr_threads is None else AsrOptions(cpu_threads=asr_threads)
        return cls(FaceExtractor() if with_face else None, SpeechRecognizer(asr), WordEmbedder())
