"""Per-modality feature extractors (face, voice, voice activity, speech recognition, words)."""
