"""Speech labels files: the corpora's naming rules, the target table against its sources, and
bad rows refused in one line naming the row."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from lab.emotion_targets import HIGH_AROUSAL, LOW_AROUSAL, NORMS, target
from lab.speech_labels import (
    LabelsError,
    corpus_rows,
    emodb_clip,
    ravdess_clip,
    read_speech_labels,
    write_speech_labels,
)

ROOT = Path(__file__).resolve().parents[1]

# Russell & Mehrabian (1977), pleasure and arousal of the emotion words (scale -1..1)
RUSSELL_MEHRABIAN_1977 = {
    "happy": (0.81, 0.51), "sad": (-0.63, -0.27), "angry": (-0.51, 0.59),
    "fearful": (-0.64, 0.60), "disgust": (-0.60, 0.35), "surprised": (0.40, 0.67),
    "boredom": (-0.65, -0.62),
}  # fmt: skip


def test_the_table_is_its_sources() -> None:
    for emotion, point in RUSSELL_MEHRABIAN_1977.items():
        assert NORMS[emotion] == point, emotion
    # Russell (1980): relaxation at 315 degrees of the circumplex
    assert NORMS["calm"] == (round(math.cos(math.radians(315)), 2), round(math.sin(math.radians(315)), 2))
    assert NORMS["calm"] == (0.71, -0.71) and NORMS["neutral"] == (0.0, 0.0)
    # the face readout's circumplex uses the same ratings
    from contract.readout_messages import CIRCUMPLEX

    for face, speech in (("angry", "angry"), ("happy", "happy"), ("sad", "sad"), ("fear", "fearful"),
                         ("disgust", "disgust"), ("surprise", "surprised")):  # fmt: skip
        assert CIRCUMPLEX[face] == NORMS[speech]


def test_targets_on_the_model_scale() -> None:
    assert target("happy", "strong").valence == pytest.approx(3 * 0.81)
    assert target("happy", "normal").valence == pytest.approx(2 * 0.81)
    assert target("sad", "").valence == pytest.approx(3 * -0.63)  # no intensity levels: strong
    assert target("neutral", "normal").valence == 0.0
    assert all(-3 <= target(e, i).valence <= 3 for e in NORMS for i in ("normal", "strong", ""))
    assert target("angry").arousal_side == "high" and target("sad").arousal_side == "low"
    assert set(HIGH_AROUSAL).isdisjoint(LOW_AROUSAL) and len(HIGH_AROUSAL + LOW_AROUSAL) == len(NORMS)
    with pytest.raises(ValueError, match="not one of"):
        target("joy")


def test_ravdess_names() -> None:
    clip = ravdess_clip(Path("Actor_16/03-01-05-02-01-01-16.flac"), dev_speakers=["16"])
    assert (clip.corpus, clip.speaker, clip.emotion, clip.intensity, clip.split) == (
        "ravdess", "16", "angry", "strong", "valid")  # fmt: skip
    assert ravdess_clip(Path("03-01-02-01-02-02-03.wav")).emotion == "calm"
    assert ravdess_clip(Path("03-01-08-01-01-01-03.wav")).split == "train"
    assert ravdess_clip(Path("03-02-05-02-01-01-16.flac")) is None  # song, not speech
    assert ravdess_clip(Path("03-01-09-01-01-01-16.flac")) is None  # no emotion 09
    assert ravdess_clip(Path("notes.flac")) is None


def test_emodb_names() -> None:
    expected = {"03a01Wa": "angry", "08b02Lb": "boredom", "10a04Ea": "disgust",
                "11b09Ac": "fearful", "13a05Fc": "happy", "14a07Ta": "sad", "16b10Nb": "neutral"}  # fmt: skip
    for stem, emotion in expected.items():
        clip = emodb_clip(Path(stem + ".flac"))
        assert (clip.emotion, clip.speaker, clip.intensity, clip.split) == (emotion, stem[:2], "", "test")
    assert emodb_clip(Path("03a01Xa.flac")) is None


def test_written_files_read_back(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus" / "Actor_01"
    corpus.mkdir(parents=True)
    for name in ("03-01-03-02-01-01-01", "03-01-04-01-02-02-01", "stray"):
        (corpus / f"{name}.flac").write_bytes(b"")
    clips, other = corpus_rows(tmp_path / "corpus", ravdess_clip)
    assert [p.name for p in other] == ["stray.flac"]
    out = tmp_path / "labels" / "ravdess.csv"
    assert write_speech_labels(out, clips) == 2
    assert "../corpus/Actor_01/" in out.read_text()  # relative to the labels file
    back = read_speech_labels(out)
    assert [(c.emotion, c.intensity, c.path) for c in back] == [
        (c.emotion, c.intensity, c.path.resolve()) for c in clips
    ]


def _labels(tmp_path: Path, rows: list[str], header: str = "path,corpus,speaker,emotion,intensity") -> Path:
    (tmp_path / "a.flac").write_bytes(b"")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["a.flac,x,1,joy,normal"], None, r"labels.csv:2: emotion 'joy' is not one of"),
        (["a.flac,x,1,sad,normal", "b.flac,x,1,sad,normal"], None, r"labels.csv:3: file .*b.flac does not exist"),
        (["a.flac,x,1,sad,loud"], None, r"labels.csv:2: intensity 'loud'"),
        (["a.flac,x,1,sad"], "path,corpus,speaker,emotion", r"lacks column\(s\) intensity"),
    ],
)
def test_bad_rows_name_the_row(tmp_path: Path, rows, header, message) -> None:  # noqa: ANN001
    path = _labels(tmp_path, rows, header or "path,corpus,speaker,emotion,intensity")
    with pytest.raises(LabelsError, match=message):
        read_speech_labels(path)


def test_bad_labels_file_is_one_line_from_the_builder(tmp_path: Path) -> None:
    path = _labels(tmp_path, ["a.flac,x,1,joy,normal"])
    run = subprocess.run([sys.executable, "-m", "lab.build_dataset", "--labels", str(path), "--out",
                          str(tmp_path / "o.pkl")], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: labels.csv:2: emotion 'joy' is not one of neutral, calm, happy, sad, angry, "
        "fearful, disgust, surprised, boredom"
    ]
