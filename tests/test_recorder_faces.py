"""Recordings with several people (issue 33): faces.csv has a row per face per step (written once,
with the step's first publication), empty cells where a value is absent; utterances.csv names the
utterance's speaker."""

from __future__ import annotations

import csv

from contract import messages as m
from realtime.recorder import FACE_COLUMNS, UTTERANCE_COLUMNS, Recorder

EXPR = m.Expressions(0.1, 0.0, 0.2, 0.4, 0.1, 0.1, 0.1)


def _step(seq: int, revision: int, faces, speaker) -> m.StepMessage:
    return m.StepMessage(
        session="s", seq=seq, t_emit=1.0, t_start=seq / 10, t_end=(seq + 1) / 10, intensity=0.5,
        modality_weights=m.ModalityWeights(0.2, 0.3, 0.5), present=m.Presence(True, True, True),
        revision=revision, final=revision == 1, latency_ms=5.0, faces=faces, speaker=speaker)


def _face(fid: int, pose: bool, base: bool) -> m.PersonFace:
    return m.PersonFace(id=fid, box=(fid * 100, 10, 80, 90), expressions=EXPR, valence=0.2,
                        arousal=-0.1, quality=0.9, speaking=0.7 if fid == 1 else 0.3,
                        pose=m.HeadPose(12.5, -3.0, 1.0) if pose else None,
                        baseline=m.FaceBaseline(0.5, -1.25) if base else None)  # fmt: skip


def test_faces_csv_row_per_face_per_step(tmp_path) -> None:
    rec = Recorder(tmp_path)
    two = (_face(1, True, True), _face(2, False, False))
    for seq in range(3):
        faces = two if seq < 2 else ()
        for revision in (0, 1):  # a revision carries the same faces: not written again
            rec.send(_step(seq, revision, faces, 1 if seq == 0 else None))
    rec.send(_step(3, 0, None, None))  # an earlier publisher's step: no faces, no rows
    rec.send(m.UtteranceMessage(session="s", seq=0, t_emit=1.0, utterance_id=0, t_start=0.0,
                                t_end=0.2, transcript="hi", utterance_intensity=0.1,
                                timestep_intensity=0.1, final_intensity=0.1, latency_ms=1.0,
                                speaker=1))  # fmt: skip
    rec.close()
    with open(tmp_path / "faces.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == FACE_COLUMNS
    assert [(r["seq"], r["id"]) for r in rows] == [("0", "1"), ("0", "2"), ("1", "1"), ("1", "2")]
    first, other = rows[0], rows[1]
    assert (first["x"], first["w"], first["face_happy"], first["is_speaker"]) == ("100", "80",
                                                                                "0.4", "1")
    assert (first["yaw"], first["baseline_arousal"]) == ("12.5", "-1.25")
    assert other["is_speaker"] == "0" and other["yaw"] == "" and other["baseline_valence"] == ""
    assert rows[2]["is_speaker"] == "0"  # step 1 had no speaker
    with open(tmp_path / "utterances.csv", newline="") as f:
        utts = list(csv.DictReader(f))
    assert tuple(utts[0]) == UTTERANCE_COLUMNS and utts[0]["speaker"] == "1"
