"""python -m lab.reembed_text --data IN.pkl --text-adapter ADAPTER.pt --out OUT.pkl

Give a dataset built with the base MiniLM the text features an adapted encoder would have given
(an adapted MiniLM, or an adapted MPNet: the adapter names its encoder, msrg.text_encoders),
without replaying its media again (a TTS build of CMU-MOSI takes about an hour on two cores).

A step's text vector is the embedding of the words of its utterance up to the last word that
overlaps the step (realtime/extractors/words.py). The dataset keeps the transcript but not the
word times, so each run of equal text vectors is matched back to its word span: the candidate
spans of the transcript (the next word of the current utterance, or the first word of a new one,
then wider) are embedded with the base encoder and the span whose vector equals the stored one
(cosine >= 0.999) is taken; that span is then embedded with the adapted encoder (MPNet's vectors
are wider, so the text block grows from 384 to 768 columns). A segment where some run matches no
span is dropped and listed, never kept with mixed features.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("lab.reembed_text")

MATCH_COSINE = 0.999


class Matcher:
    """Finds the word span of each stored text vector, using the base encoder.

    The spans starting at one word are embedded together, once per segment and start: a
    transcript of n words costs n sentences per utterance, in one call."""

    def __init__(self, embed_base) -> None:  # noqa: ANN001 - texts -> list of (D,) vectors
        self._embed = embed_base

    def spans(self, words: list[str], runs: list[np.ndarray]) -> list[tuple[int, int]] | None:
        """One (start, end) word span per run vector (unit norm), in order; None if any fails."""
        n = len(words)
        from_start: dict[int, np.ndarray] = {}  # start -> (n - start, D) embeddings of [start, e)

        def ends_from(s: int) -> np.ndarray:
            if s not in from_start:
                from_start[s] = np.stack(
                    self._embed([" ".join(words[s:e]) for e in range(s + 1, n + 1)])
                )
            return from_start[s]

        def match(s: int, first_end: int, vector: np.ndarray) -> tuple[int, int] | None:
            if not 0 <= s < n or first_end > n:
                return None
            cos = ends_from(s)[max(first_end, s + 1) - s - 1 :] @ vector
            if not len(cos) or cos.max() < MATCH_COSINE:
                return None
            return s, max(first_end, s + 1) + int(np.argmax(cos))

        start, end = 0, 0  # current utterance starts at `start`; words before `end` are placed
        out = []
        for vector in runs:
            found = match(start, end + 1, vector)  # the utterance goes on
            for s in (end, end + 1, end + 2):  # or a new one starts (a word may hide in a step)
                if found is None:
                    found = match(s, s + 1, vector)
            for s in range(n):  # anything else: search every span
                if found is None:
                    found = match(s, s + 1, vector)
            if found is None:
                return None
            out.append(found)
            start, end = found
        return out


def runs_of(text: np.ndarray, present: np.ndarray) -> list[tuple[int, int]]:
    """(first, last+1) step ranges of consecutive present steps with the same text vector."""
    runs, t = [], 0
    steps = len(text)
    while t < steps:
        if present[t] <= 0:
            t += 1
            continue
        u = t + 1
        while u < steps and present[u] > 0 and np.array_equal(text[u], text[t]):
            u += 1
        runs.append((t, u))
        t = u
    return runs


def reembed_split(
    split: dict, matcher: Matcher, embed_adapted, digest: str, dim: int | None = None  # noqa: ANN001
) -> list[str]:
    """Replace split['text'] (in place when `dim` is its width or None, else by a new array of
    `dim` columns, zero where no word is heard); drop segments that cannot be matched. Returns
    problems."""
    old = split["text"]
    if dim is None or dim == old.shape[-1]:
        texts = old
    else:
        texts = np.zeros((*old.shape[:-1], dim), np.float32)
    transcripts = split.get("asr_text") or split.get("raw_text")
    if transcripts is None:
        raise ValueError("the data file keeps no transcripts (asr_text or raw_text)")
    keep, problems = [], []
    for i in range(len(texts)):
        words = str(transcripts[i]).split()
        present = split["mask"][i, :, 0] * split["valid"][i]
        runs = runs_of(old[i], present)
        if not runs:
            keep.append(i)
            continue
        vectors = [old[i][a] / max(np.linalg.norm(old[i][a]), 1e-12) for a, _ in runs]
        spans = matcher.spans(words, vectors)
        if spans is None:
            problems.append(f"{split['id'][i]}: a text vector matches no span of its transcript")
            continue
        new = embed_adapted([" ".join(words[a:b]) for a, b in spans])
        for (a, b), vector in zip(runs, new):
            texts[i][a:b] = vector
        keep.append(i)
    split["text"] = texts
    if len(keep) < len(texts):
        for key, value in list(split.items()):
            if isinstance(value, np.ndarray) and len(value) == len(texts):
                split[key] = value[keep]
            elif isinstance(value, list) and len(value) == len(texts):
                split[key] = [value[k] for k in keep]
    split["text_adapter"] = digest
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lab.reembed_text", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--data", required=True, type=Path, help="dataset from lab.build_dataset (base MiniLM)"
    )
    p.add_argument(
        "--text-adapter", required=True, type=Path, help="lab.tune_text file or a checkpoint"
    )
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from msrg.text_adapter import AdapterError, load_adapter
    from realtime.extractors.words import TextModelError, WordEmbedder, WordEmbedderOptions

    try:
        adapter = load_adapter(args.text_adapter)
        with open(args.data, "rb") as f:
            data = pickle.load(f)
        base = WordEmbedder(WordEmbedderOptions(cache_size=200_000))
        adapted = WordEmbedder(WordEmbedderOptions(adapter=adapter, cache_size=0))
    except (AdapterError, TextModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        print(
            f"error: {args.data} is not a readable dataset ({type(exc).__name__})", file=sys.stderr
        )
        return 2
    matcher = Matcher(base._embed_texts)
    problems = []
    for name, split in data.items():
        if not isinstance(split, dict) or "text" not in split:
            continue
        if split.get("text_adapter"):
            print(f"error: {args.data} split {name} is already embedded with adapter "
                  f"{split['text_adapter']}; start from a base-encoder build", file=sys.stderr)  # fmt: skip
            return 2
        before = len(split["text"])
        problems += reembed_split(
            split, matcher, adapted._embed_texts, adapter["digest"], adapted.dim
        )
        print(f"{name}: {len(split['text'])} of {before} segments re-embedded")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:
        pickle.dump(data, f)
    for line in problems:
        print(f"dropped {line}")
    print(f"wrote {args.out} ({adapted.description})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
