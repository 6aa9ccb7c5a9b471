"""The encoder reads words in the training transcripts' form (msrg.text_form)."""

from __future__ import annotations

import pytest

from lab.dataset_builder import BuildOptions
from msrg import text_form
from msrg.text_form import transcript_form


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("This movie was made for three reasons, in my opinion.", "this movie was made for three reasons in my opinion"),
        ("I didn't like it and they should've known", "i didnt like it and they shouldve known"),
        ("It\u2019s a 3D film - well-known?", "its a 3d film well known"),
        ("Um... okay!", "um okay"),
        ("  Caf\u00e9  ", "caf\u00e9"),
        ("?!", ""),
        ("", ""),
    ],
)  # fmt: skip
def test_recognised_text_is_written_like_the_transcripts(written: str, read: str) -> None:
    assert transcript_form(written) == read


@pytest.mark.parametrize(
    "transcript",
    ["they didnt really do a whole bunch of background info", "i give it a 10 out of 10", "a"],
)
def test_transcripts_already_in_that_form_are_unchanged(transcript: str) -> None:
    assert transcript_form(transcript) == transcript
    assert transcript_form(transcript_form("Don't, STOP.")) == transcript_form("Don't, STOP.")


def test_the_rule_is_part_of_the_feature_cache_key(monkeypatch) -> None:
    before = BuildOptions(transcripts=True).key()
    monkeypatch.setattr("lab.dataset_builder.TEXT_FORM", "some-other-rule")
    assert BuildOptions(transcripts=True).key() != before
    assert text_form.TEXT_FORM != "some-other-rule"
