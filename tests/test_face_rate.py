"""Face analysis rate: by default the first frame of each step is analysed and the step's other
frames reuse it; --face-hz 0 analyses every frame. Real face extractor on the demo clip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contract import messages
from engines import load_engine
from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG
from realtime.extractors import Extractors
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.sources.demo import ensure_demo_clip
from realtime.sources.media_file import MediaFileOptions, MediaFileSource

CLIP_S = 2.0


class CountingFace:
    """The real face extractor, counting the frames it analyses."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.times: list[float] = []

    def process(self, frame, near=None):
        self.times.append(frame.t_s)
        return self.inner.process(frame, near)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    path = save_checkpoint(MSRG().eval(), tmp_path_factory.mktemp("face_rate") / "random.pt")
    return load_engine("eager", path)


def run(extractors: Extractors, engine, face_hz: float | None) -> tuple[CountingFace, list]:
    face = CountingFace(extractors.face)
    counted = dataclasses.replace(extractors, face=face)
    got: list[messages.Message] = []
    source = MediaFileSource(MediaFileOptions(ensure_demo_clip()))
    pipeline = Pipeline(PipelineOptions(duration_s=CLIP_S, face_hz=face_hz), [source], engine,
                        counted, live=False, on_message=got.append)  # fmt: skip
    pipeline.start()
    try:
        assert pipeline.wait(120)
    finally:
        pipeline.stop()
    return face, [m for m in got if isinstance(m, messages.StepMessage) and m.final]


def test_one_face_analysis_per_step_by_default(extractors, engine) -> None:
    face, steps = run(extractors, engine, None)
    # One analysis per step where the face is found at once, more only after a detector miss.
    assert CLIP_S * 10 - 1 <= len(face.times) <= CLIP_S * 15
    assert len(steps) == 20 and sum(m.present.visual for m in steps) >= 16  # the face is seen


def test_every_frame_with_face_hz_0(extractors, engine) -> None:
    face, steps = run(extractors, engine, 0.0)
    assert len(face.times) == pytest.approx(CLIP_S * 30, abs=2)  # the clip is 30 fps
    assert len(steps) == 20 and sum(m.present.visual for m in steps) >= 16


def test_negative_face_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="--face-hz must be >= 0"):
        PipelineOptions(face_hz=-1.0)


class ScriptedFace:
    """Stands in for the detector in a test of the sampling rule alone: a face in every frame
    except those listed."""

    def __init__(self, misses: set[int]) -> None:
        self.misses, self.seqs = misses, []

    def process(self, frame):
        from realtime.types import FaceObservation

        self.seqs.append(frame.seq)
        present = frame.seq not in self.misses
        return FaceObservation(frame.t_s, present, np.full(12, float(present), np.float32), None)


def test_sampler_analyses_until_a_face_is_found_in_each_interval() -> None:
    from realtime.extractors.face import FaceSampler
    from realtime.types import VideoFrame

    image = np.zeros((4, 4, 3), np.uint8)
    frames = [VideoFrame(seq=i, t_s=i / 30, image=image) for i in range(61)]  # 2 s at 30 fps
    scripted = ScriptedFace(misses={3, 4, 9})
    sampler = FaceSampler(scripted, 10.0)
    observed = [sampler.push(f) for f in frames]
    # first frame of each 100 ms interval; after a miss, the interval's next frame
    assert scripted.seqs == [0, 3, 4, 5, 6, 9, 10, *range(12, 61, 3)]
    assert [o.t_s for o in observed] == [f.t_s for f in frames]  # each keeps its own time
    assert [o.present for o in observed].count(False) == 3  # only the missed frames themselves
    every = FaceSampler(ScriptedFace(set()), 0.0)
    for f in frames:
        every.push(f)
    assert every.analysed == 61
    with pytest.raises(ValueError, match="must be >= 0"):
        FaceSampler(scripted, -1.0)
