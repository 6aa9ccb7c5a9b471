"""Several people through the real pipeline (issue 33): the demo clip's one face gives today's
messages apart from the new fields; MEAD's voiced talking face beside a silent one (composed side
by side with ffmpeg, the voiced clip's sound) gives both faces, stable ids, the voiced face as the
speaker and as the utterance's; file replay gives the same per-face data as the pipeline."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
import torch

from contract import messages
from engines import load_engine
from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG
from realtime.extractors.face_mesh import mediapipe_available
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.recorder import Recorder
from realtime.replay import extract_source
from realtime.sources.demo import ensure_demo_clip
from realtime.sources.media_file import MediaFileOptions, MediaFileSource

MEAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "mead"
needs_mp = pytest.mark.skipif(not mediapipe_available(), reason="mediapipe is not installed")
needs_mead = pytest.mark.skipif(not MEAD.is_dir(), reason=f"{MEAD} is absent")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    path = save_checkpoint(MSRG().eval(), tmp_path_factory.mktemp("people") / "random.pt")
    return load_engine("eager", path)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """640x320 at 25 fps: the voiced MEAD face (centre square) left, the silent one right."""
    out = tmp_path_factory.mktemp("people") / "two.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(MEAD / "test_crop_M030_sad_3_001.mp4"),
                    "-i", str(MEAD / "test_video_surprised.mp4"), "-filter_complex",
                    "[0:v]crop=ih:ih,scale=320:320,fps=25[a];[1:v]scale=320:320,fps=25[b];"
                    "[a][b]hstack=inputs=2[v]", "-map", "[v]", "-map", "0:a", "-t", "3.69",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)],
                   check=True)  # fmt: skip
    return out


def run(extractors, engine, clip: Path, max_faces: int | None, outlets=None,
        **kw) -> list[messages.Message]:  # fmt: skip
    got: list[messages.Message] = []
    source = MediaFileSource(MediaFileOptions(clip))
    pipeline = Pipeline(PipelineOptions(max_faces=max_faces, baseline_s=1.0, **kw), [source],
                        engine, extractors, live=False, on_message=got.append,
                        outlets=outlets)  # fmt: skip
    pipeline.start()
    try:
        assert pipeline.wait(180)
    finally:
        pipeline.stop()
    return got


def finals(got) -> list[messages.StepMessage]:
    return [m for m in got if isinstance(m, messages.StepMessage) and m.final]


@needs_mp
def test_one_face_messages_are_todays_apart_from_the_new_fields(extractors, engine) -> None:
    before = run(extractors, engine, ensure_demo_clip(), None, duration_s=4.0)
    after = run(extractors, engine, ensure_demo_clip(), 4, duration_s=4.0)
    a, b = finals(before), finals(after)
    assert len(a) == len(b) == 40
    for x, y in zip(a, b):
        assert (x.seq, x.face, x.voice, x.present, x.intensity) == (y.seq, y.face, y.voice,
                                                                     y.present, y.intensity)
        assert x.faces is None and x.speaker is None
        assert y.faces is not None and len(y.faces) <= 1
        assert y.speaker in (None, *(f.id for f in y.faces))
    assert sum(len(y.faces) == 1 for y in b) >= 36  # Face Mesh finds the demo face
    assert len({f.id for y in b for f in y.faces}) == 1
    ua = [m for m in before if isinstance(m, messages.UtteranceMessage)]
    ub = [m for m in after if isinstance(m, messages.UtteranceMessage)]
    assert [(u.transcript, u.final_intensity) for u in ua] == [
        (u.transcript, u.final_intensity) for u in ub]
    status = [m for m in after if isinstance(m, messages.StatusMessage)]
    assert status and all(s.face_note is None for s in status)  # Face Mesh, no fallback


@needs_mp
@needs_mead
def test_two_faces_ids_speaker_and_replay(extractors, engine, two_faces, tmp_path) -> None:
    got = run(extractors, engine, two_faces, 4, outlets=[Recorder(tmp_path / "rec")])
    steps = finals(got)
    assert len(steps) >= 35
    both = [s for s in steps if s.faces is not None and len(s.faces) == 2]
    assert len(both) >= 0.9 * len(steps)
    side = lambda f: "voiced" if f.box[0] + f.box[2] / 2 < 320 else "silent"  # noqa: E731
    ids = {"voiced": set(), "silent": set()}
    for s in both:
        for f in s.faces:
            ids[side(f)].add(f.id)
    assert len(ids["voiced"]) == 1 and len(ids["silent"]) == 1 and ids["voiced"] != ids["silent"]
    (voiced,) = ids["voiced"]
    # Speech runs through the clip; the first 0.8 s give no speaker (too few mouth frames yet).
    speech = [s for s in steps if s.present.audio and s.t_start >= 1.0]
    assert len(speech) >= 15
    right = sum(s.speaker == voiced for s in speech) / len(speech)
    assert right >= 0.8, [(s.seq, s.speaker) for s in steps]
    # The model's face is the primary face: the speaker's when there is one.
    for s in both:
        if s.speaker is not None:
            (spk,) = [f for f in s.faces if f.id == s.speaker]
            assert s.face.expressions == spk.expressions
    utterances = [m for m in got if isinstance(m, messages.UtteranceMessage)]
    assert utterances and utterances[-1].speaker == voiced
    with open(tmp_path / "rec" / "faces.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(s.faces or ()) for s in steps)  # a row per face per step
    assert {int(r["id"]) for r in rows if r["is_speaker"] == "1"} == {voiced} | {
        s.speaker for s in steps if s.speaker is not None}
    # File replay (dataset builds, evaluation) gives the same per-face data.
    replayed = extract_source(MediaFileSource(MediaFileOptions(two_faces)), extractors,
                              max_faces=4).steps  # fmt: skip
    assert [s.seq for s in replayed] == [s.seq for s in steps]
    for r, s in zip(replayed, steps):
        live = [(f.id, f.box, f.expressions.happy, f.speaking) for f in s.faces or ()]
        rep = [(f.id, f.box, round(f.probabilities[3], 4), f.speaking) for f in r.people.faces]
        assert [(i, b, round(h, 4), p) for i, b, h, p in live] == rep
        assert s.speaker == r.people.speaker
