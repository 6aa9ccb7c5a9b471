"""Per-modality feature extractors (face, voice, voice activity, speech recognition, words).

`Extractors` bundles the models one session or one dataset build uses; loading takes seconds, so
it is built once and shared. The submodules are imported only when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    def load(
        cls, with_face: bool = True, asr_threads: int | None = None,
        text_adapter: dict[str, Any] | None = None, asr_workers: int = 1,
        asr_model: str = "base",
    ) -> Extractors:  # fmt: skip
        """text_adapter: the checkpoint's encoder adapter (LoadedCheckpoint.text_adapter; it names
        its encoder).
        asr_workers: Whisper calls run at once from several threads (AsrOptions.workers).
        asr_model: which Whisper (AsrOptions.model: base, small, tiny.en)."""
        from realtime.extractors.asr import AsrOptions, SpeechRecognizer
        from realtime.extractors.face import FaceExtractor
        from realtime.extractors.words import WordEmbedder, WordEmbedderOptions

        asr = AsrOptions(model=asr_model, workers=asr_workers)
        if asr_threads is not None:
            asr = replace(asr, cpu_threads=asr_threads)
        words = WordEmbedder(WordEmbedderOptions(adapter=text_adapter))
        return cls(FaceExtractor() if with_face else None, SpeechRecognizer(asr), words)

    @classmethod
    def for_checkpoint(cls, checkpoint: str | Path, **kwargs: Any) -> Extractors:
        """Extractors embedding text as `checkpoint`'s model was trained on (its text adapter)."""
        from msrg.checkpoint import load_checkpoint

        return cls.load(text_adapter=load_checkpoint(checkpoint).text_adapter, **kwargs)
