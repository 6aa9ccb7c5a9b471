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
    from realtime.extractors.words import WordEncoder


@dataclass
class Extractors:
    face: FaceExtractor | None  # None when no video will be processed
    recognizer: SpeechRecognizer
    words: WordEncoder

    @classmethod
    def load(cls, with_face: bool = True) -> Extractors:
        from realtime.extractors.asr import SpeechRecognizer
        from realtime.extractors.face import FaceExtractor
        from realtime.extractors.words import WordEncoder

        return cls(FaceExtractor() if with_face else None, SpeechRecognizer(), WordEncoder())
