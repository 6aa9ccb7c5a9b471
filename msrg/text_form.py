"""The written form the text encoder reads: the training transcripts' form.

CMU-MOSI's transcripts, which every checkpoint and text adapter here was trained on, are written
in lower case with letters, digits and spaces only; contractions lose their apostrophe ("didnt",
"shouldve"). Whisper writes capitals, punctuation and apostrophes ("I didn't like it."). The
encoders' tokenizers lower-case, but punctuation and apostrophes stay tokens the model never saw
in training. So every path that hands words to the encoder (live and replay word embedding,
dataset building, adapter tuning) passes the text through `transcript_form` first: the encoder
reads one form whoever wrote the words. What people are shown keeps the recogniser's text.

The rule: lower-case; drop apostrophes; any other character that is not a letter or a digit
becomes a space; runs of spaces become one. It leaves text already in that form as it is.
"""

from __future__ import annotations

__all__ = ["TEXT_FORM", "transcript_form"]

# Names the rule in feature-cache keys: change it when the rule changes.
TEXT_FORM = "lower-alnum-v1"

_APOSTROPHES = frozenset("'\u2019\u2018\u02bc`\u00b4")


def transcript_form(text: str) -> str:
    """`text` as the training transcripts would write it ('' when nothing of it is left)."""
    kept = (ch if ch.isalnum() else " " for ch in text.lower() if ch not in _APOSTROPHES)
    return " ".join("".join(kept).split())
