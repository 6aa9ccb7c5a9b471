"""Face analysis rate: by default the first frame of each step is analysed and the step's other
frames reuse it; --face-hz 0 analyses every frame. Real face extractor on the demo clip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engines import load_engine
from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG
from realtime import messages
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

    def process(self, frame):
        self.times.append(frame.t_s)
        return self.inner.process(frame)


@pytest.fixture(scope="module")
def extractors() -> Extractors:
    torch.set_num_threads(1)
    return Extractors.load()


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
    slots = [int(t * 10 + 1e-9) for t in face.times]
    assert len(slots) == len(set(slots))  # never two analyses in one step
    assert len(face.times) == pytest.approx(CLIP_S * 10, abs=1)
    assert len(steps) == 20 and sum(m.present.visual for m in steps) >= 16  # the face is seen


def test_every_frame_with_face_hz_0(extractors, engine) -> None:
    face, steps = run(extractors, engine, 0.0)
    assert len(face.times) == pytest.approx(CLIP_S * 30, abs=2)  # the clip is 30 fps
    assert len(steps) == 20 and sum(m.present.visual for m in steps) >= 16


def test_negative_face_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="--face-hz must be >= 0"):
        PipelineOptions(face_hz=-1.0)


def test_sampler_analyses_the_first_frame_of_each_interval(extractors) -> None:
    from realtime.extractors.face import FaceSampler
    from realtime.types import VideoFrame

    image = np.zeros((120, 160, 3), np.uint8)
    frames = [VideoFrame(seq=i, t_s=i / 30, image=image) for i in range(61)]  # 2 s at 30 fps
    counting = CountingFace(extractors.face)
    sampler = FaceSampler(counting, 10.0)
    observed = [sampler.process(f) for f in frames]
    assert [round(t * 30) for t in counting.times] == list(range(0, 61, 3))  # 0, 3, 6, ...
    assert [o.t_s for o in observed] == [f.t_s for f in frames]  # each keeps its own time
    every = FaceSampler(CountingFace(extractors.face), 0.0)
    for f in frames:
        every.process(f)
    assert every.analysed == 61
    with pytest.raises(ValueError, match="must be >= 0"):
        FaceSampler(counting, -1.0)
