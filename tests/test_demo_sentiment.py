"""End to end, sentiment: every labelled sentence of the built-in demo, replayed through main.py
with the shipped checkpoint, gets its side. Tolerance: a positive sentence's utterance result is
at least +POLAR, a negative one at most -POLAR, a neutral one within +-NEUTRAL."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.session import DEFAULT_CHECKPOINT
from realtime.sources.demo import DEMO_SENTENCES, make_clip

ROOT = Path(__file__).resolve().parent.parent
POLAR = 0.5  # the result must lean clearly to the sentence's side
NEUTRAL = 1.0  # a factual sentence may lean, but not past a third of the scale

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> tuple[list, list[dict]]:
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint")
    tmp = tmp_path_factory.mktemp("demo-sentiment")
    lines = make_clip(DEMO_SENTENCES, tmp / "demo.mp4")
    run = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--video", str(tmp / "demo.mp4"), "--headless",
         "--publish", f"tcp://127.0.0.1:{_free_port()}", "--record", str(tmp / "rec"), "--baseline-s", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    with open(tmp / "rec" / "utterances.csv", newline="") as f:
        return lines, list(csv.DictReader(f))


def test_every_demo_sentence_gets_its_side(utterances) -> None:  # noqa: ANN001
    lines, rows = utterances
    assert len(rows) == len(DEMO_SENTENCES), [r["transcript"] for r in rows]
    wrong = []
    for sentence, line in zip(DEMO_SENTENCES, lines, strict=True):
        # the utterance that overlaps the sentence's span most
        row = max(rows, key=lambda r: min(float(r["t_end"]), line.t_end_s)
                  - max(float(r["t_start"]), line.t_start_s))  # fmt: skip
        value = float(row["final_intensity"])
        ok = {"positive": value >= POLAR, "negative": value <= -POLAR,
              "neutral": abs(value) <= NEUTRAL}[sentence.polarity]  # fmt: skip
        if not ok:
            wrong.append(f"{sentence.polarity} {value:+.2f} {sentence.text}")
    assert not wrong, wrong
