"""The word error rate helpers of benchmarks/tts_asr.py, against hand counts."""

from __future__ import annotations

from benchmarks.tts_asr import negations_lost, normalise, word_errors


def test_normalise_matches_the_mmsa_transcript_style() -> None:
    assert normalise("It's NOT great, really... don\u2019t go!") == "its not great really dont go"


def test_word_errors_counts_substitutions_deletions_insertions() -> None:
    assert word_errors("not great", "not great") == 0
    assert word_errors("not great", "heart rate") == 2  # two substitutions
    assert word_errors("it is not there", "it is there") == 1  # one deletion
    assert word_errors("so good", "so so good") == 1  # one insertion
    assert word_errors("a b c", "") == 3


def test_negations_lost_counts_missing_negations_only() -> None:
    assert negations_lost("its not good and i dont care", "its good and i dont care") == (1, 2)
    assert negations_lost("its good", "its not good") == (0, 0)
