"""Whisper's word error rate on espeak-ng speech, per speaking rate and word gap.

    python -m benchmarks.tts_asr [--labels ../shared/data/mosi/label.csv] [--split train]
                                 [--n 300] [--settings 160:0 160:30 150:30]
                                 [--asr-model base|small|tiny.en]

The dataset builder's `--tts` path speaks each transcript with espeak-ng and recognises it with
Whisper, so the recognised words are only as good as Whisper's hearing of espeak-ng. This
measures it on a fixed random sample of transcripts (of the train fold by default: the speech
settings must not be chosen on the fold the model is reported on). Transcripts and recognised
text are compared after lower-casing and removing punctuation and apostrophes (the MMSA
transcripts are written "dont", "its"). Also counted: negation words of the transcript ("not",
"dont", ...) missing from the recognised text, since they flip sentiment, and the process CPU
seconds spent recognising per second of speech (`cpu_per_speech_s`).

Writes benchmarks/results/tts_asr.json.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import describe, print_table, start_run, write_result
from realtime.tts import DATASET_WORD_GAP_MS, DATASET_WORDS_PER_MINUTE
from realtime.types import SAMPLE_RATE_HZ

NEGATIONS = ("not", "no", "never", "dont", "didnt", "doesnt", "isnt", "wasnt", "cant", "wont")
DEFAULT_LABELS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mosi" / "label.csv"


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped, every other non-alphanumeric run a single space."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[len(hyp)]


def negations_lost(reference: str, hypothesis: str) -> tuple[int, int]:
    """(negation words of the reference missing from the hypothesis, negation words in it)."""
    ref, hyp = reference.split(), hypothesis.split()
    lost = sum(max(0, ref.count(w) - hyp.count(w)) for w in NEGATIONS)
    return lost, sum(ref.count(w) for w in NEGATIONS)


def parse_setting(text: str) -> tuple[int, int]:
    try:
        wpm, gap = (int(part) for part in text.split(":"))
    except ValueError:
        wpm = gap = -1
    if wpm <= 0 or gap < 0 or gap % 10:
        raise argparse.ArgumentTypeError(
            f"bad setting {text!r}: write WORDS_PER_MINUTE:WORD_GAP_MS with the gap a multiple "
            "of 10 ms, e.g. 150:30"
        )
    return wpm, gap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--split", default="train")
    parser.add_argument("--n", type=int, default=300, help="transcripts sampled (seed 1)")
    parser.add_argument(
        "--settings", nargs="+", type=parse_setting, default=[(160, 0), (160, 30), (DATASET_WORDS_PER_MINUTE, DATASET_WORD_GAP_MS)],
        help="WORDS_PER_MINUTE:WORD_GAP_MS pairs to compare",
    )  # fmt: skip
    parser.add_argument("--asr-threads", type=int, default=2)
    parser.add_argument("--asr-model", default="base",
                        help="base, small or tiny.en (realtime/extractors/whisper_weights.py)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start_run()

    from lab.dataset_builder import MODES, DatasetError, read_labels
    from realtime.extractors.asr import AsrModelError, AsrOptions, SpeechRecognizer
    from realtime.tts import synthesize_speech

    try:
        segments, _problems = read_labels(args.labels)
    except DatasetError as exc:
        parser.exit(2, f"error: {exc}\n")
    split = MODES.get(args.split, args.split)
    pool = [s for s in segments if s.split == split and s.text]
    if not pool:
        parser.exit(2, f"error: no transcripts of split {args.split!r} in {args.labels}\n")
    order = np.random.default_rng(1).permutation(len(pool))[: args.n]
    sample = [pool[i] for i in sorted(order)]
    try:
        recognizer = SpeechRecognizer(
            AsrOptions(model=args.asr_model, cpu_threads=args.asr_threads)
        )
    except (AsrModelError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")

    rows, results = [], []
    for wpm, gap_ms in args.settings:
        errors = words = lost = negations = 0
        speech_s = cpu_s = 0.0
        t0 = time.perf_counter()
        for seg in sample:
            audio = synthesize_speech(seg.text, words_per_minute=wpm, word_gap_ms=gap_ms)
            speech_s += len(audio) / SAMPLE_RATE_HZ
            c0 = time.process_time()  # this process only: espeak-ng runs in a child
            words_heard = recognizer.transcribe(audio, 0.0)
            cpu_s += time.process_time() - c0
            heard = normalise(" ".join(w.text for w in words_heard))
            reference = normalise(seg.text)
            errors += word_errors(reference, heard)
            words += len(reference.split())
            n_lost, n_neg = negations_lost(reference, heard)
            lost, negations = lost + n_lost, negations + n_neg
        result = {
            "words_per_minute": wpm, "word_gap_ms": gap_ms, "wer": errors / words,
            "negations_lost": lost, "negations": negations, "speech_s": speech_s,
            "wall_s": time.perf_counter() - t0, "cpu_per_speech_s": cpu_s / max(speech_s, 1e-9),
        }  # fmt: skip
        results.append(result)
        rows.append([wpm, gap_ms, f"{100 * result['wer']:.1f}", f"{lost}/{negations}",
                     f"{speech_s:.0f}", f"{result['wall_s']:.0f}",
                     f"{result['cpu_per_speech_s']:.3f}"])  # fmt: skip
    print(f"{len(sample)} {args.split} transcripts of {args.labels.name}, "
          f"Whisper {args.asr_model}, greedy")  # fmt: skip
    print_table(["wpm", "gap ms", "WER %", "negations lost", "speech s", "wall s",
                 "CPU s / speech s"], rows)  # fmt: skip
    path = write_result("tts_asr", {
        "split": args.split, "n": len(sample), "words": words, "settings": results,
        "asr_model": args.asr_model,
    }, engine=f"faster-whisper {args.asr_model} int8 (no MSRG engine)",
        threads=args.asr_threads)  # fmt: skip
    print(f"wrote {path} ({describe()['cpu']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
