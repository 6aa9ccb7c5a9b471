"""The built-in demo clip: real face video + espeak-ng speech, cached with a manifest."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.extractors.face import FaceExtractor
from realtime.sources import demo
from realtime.sources.base import SourceError
from realtime.sources.demo import (
    DEMO_SENTENCES,
    FRAME_SIZE_PX,
    PAUSE_S,
    demo_source,
    demo_timeline,
    ensure_demo_clip,
)
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None,
    reason="needs ffmpeg and espeak-ng",
)


@pytest.fixture(scope="module")
def clip() -> Path:
    return ensure_demo_clip()  # built once into the cache folder (~3 s), then reused


@pytest.fixture(scope="module")
def speech(clip: Path) -> np.ndarray:
    """(N,) float32 at SAMPLE_RATE_HZ: the clip's whole audio track, as the pipeline sees it."""
    source = MediaFileSource(MediaFileOptions(clip, use_video=False))
    source.start()
    blocks = []
    while (block := source.read(timeout_s=1.0)) is not None:
        blocks.append(block.samples)
    return np.concatenate(blocks)


def test_sentences_cover_all_polarities() -> None:
    polarities = [s.polarity for s in DEMO_SENTENCES]
    assert set(polarities) == {"positive", "negative", "neutral"}
    assert polarities.count("positive") >= 4 and polarities.count("negative") >= 4


def test_clip_has_webcam_sized_video_and_speech_of_about_a_minute(clip: Path) -> None:
    with av.open(str(clip)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == FRAME_SIZE_PX
        assert audio.codec_context.sample_rate == SAMPLE_RATE_HZ
        duration_s = container.duration / av.time_base
    assert 50.0 < duration_s < 75.0
    assert duration_s == pytest.approx(demo_timeline()[-1].t_end_s + PAUSE_S, abs=0.5)


def test_timeline_matches_sentences_with_pauses_between() -> None:
    lines = demo_timeline()
    assert [(line.text, line.polarity) for line in lines] == [
        (s.text, s.polarity) for s in DEMO_SENTENCES
    ]
    for a, b in zip(lines, lines[1:], strict=False):
        assert b.t_start_s - a.t_end_s == pytest.approx(PAUSE_S, abs=1e-3)
        assert a.t_end_s - a.t_start_s > 1.0


def test_speech_lies_inside_the_timeline_spans(speech: np.ndarray) -> None:
    def rms(t0_s: float, t1_s: float) -> float:
        part = speech[int(t0_s * SAMPLE_RATE_HZ) : int(t1_s * SAMPLE_RATE_HZ)]
        return float(np.sqrt(np.mean(part**2)))

    lines = demo_timeline()
    for a, b in zip(lines, lines[1:], strict=False):
        # The middle of each pause is silent (espeak's own edge silences sit inside the spans).
        assert rms(a.t_end_s + 0.2, b.t_start_s - 0.2) < 0.1 * rms(a.t_start_s, a.t_end_s)


def test_face_is_visible_in_the_clip(clip: Path) -> None:
    source = demo_source(realtime=False)
    source.start()
    frames = []
    while len(frames) < 60:
        record = source.read(timeout_s=1.0)
        assert record is not None
        if isinstance(record, VideoFrame):
            frames.append(record)
    source.stop()
    assert frames[0].image.shape == (FRAME_SIZE_PX[1], FRAME_SIZE_PX[0], 3)
    extractor = FaceExtractor()
    present = [extractor.process(frame).present for frame in frames[::5]]
    assert sum(present) >= len(present) // 2


def test_mixed_records_arrive_from_the_demo_source(clip: Path) -> None:
    source = demo_source(realtime=False)
    source.start()
    kinds = {type(source.read(timeout_s=1.0)) for _ in range(20)}
    source.stop()
    assert kinds == {VideoFrame, AudioBlock}


def test_up_to_date_clip_is_reused(clip: Path) -> None:
    mtime_ns = clip.stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_demo_clip() == clip
    assert time.perf_counter() - start < 2.0
    assert clip.stat().st_mtime_ns == mtime_ns


def test_missing_tools_give_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither espeak-ng nor ffmpeg can be found
    with pytest.raises(SourceError) as info:
        ensure_demo_clip(tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and "not found" in message and "apt-get install" in message


def test_stale_manifest_triggers_a_rebuild(clip: Path, tmp_path: Path) -> None:
    shutil.copy(clip, tmp_path / demo.CLIP_NAME)
    manifest = json.loads((clip.parent / demo.MANIFEST_NAME).read_text())
    manifest["inputs_key"] = "from-an-older-generator"
    (tmp_path / demo.MANIFEST_NAME).write_text(json.dumps(manifest))
    mtime_ns = (tmp_path / demo.CLIP_NAME).stat().st_mtime_ns
    rebuilt = ensure_demo_clip(tmp_path)
    assert rebuilt.stat().st_mtime_ns != mtime_ns
    manifest = json.loads((tmp_path / demo.MANIFEST_NAME).read_text())
    assert manifest["inputs_key"] != "from-an-older-generator"
