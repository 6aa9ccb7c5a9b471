"""Build an MSRG training set by replaying labelled segments through the live extractors.

For each row of a label file (MMSA `label.csv`: id,text,label,mode; or CMU-MOSI segment timings:
video_id,segment,start_s,end_s,label) the segment's media is replayed through the same face,
voice, VAD, speech recognition, word embedding and aligner code as the live monitor, so a model
trained on the result sees in training exactly what it sees live. Without media, `--tts` speaks
the transcript with espeak-ng (no video: visual absent). `--transcripts` places the ground-truth
words on the speech instead of recognising them (to measure what recognition costs).

The output is an MMSA-format pickle (splits train/valid/test) with `mask` and `valid` added;
`python -m lab.train --data OUT --preset live` trains on it. Each segment's features are cached
(one .npz per id, in the cache folder, keyed by the builder's settings), so an interrupted build
resumes and lab.evaluate reuses what a build made.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import multiprocessing as mp
import os
import pickle
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from msrg.text_form import TEXT_FORM

log = logging.getLogger(__name__)

# 2: one face analysis per step, as live; 3: a word starting on a step boundary is in the step it
# starts (it was in the one before when the step was built after the word, as here, not live)
BUILDER_VERSION = 3
MODES = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}
MEDIA_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".wav", ".flac", ".mp3", ".m4a")


class DatasetError(ValueError):
    """A label file or media folder that cannot be used; one line."""


@dataclass(frozen=True)
class Segment:
    id: str
    text: str
    label: float
    split: str  # train | valid | test
    video_id: str = ""
    start_s: float | None = None  # within the whole video, when timings are given
    end_s: float | None = None
    path: str = ""  # the clip itself, when a speech labels file names it (lab/speech_labels.py)


@dataclass(frozen=True)
class BuildOptions:
    source: str = "tts"  # tts | media
    transcripts: bool = False  # ground-truth words instead of speech recognition
    step_hz: float = 10.0
    pause_ms: float = 600.0
    max_steps: int = 600  # keep at most this many steps per segment (the last ones)
    text_adapter: str = ""  # digest of the encoder adapter words are embedded with ('' = base MiniLM)
    # Text held through gaps between words shorter than the pause, as live (PipelineOptions).
    text_hold: bool = True

    def key(self) -> str:
        fields = asdict(self)
        if not fields["text_adapter"]:  # the base encoder keeps the keys caches had before
            del fields["text_adapter"]
        if not fields["text_hold"]:  # as do features built without the hold
            del fields["text_hold"]
        fields["text_form"] = TEXT_FORM  # how words are written for the encoder (msrg.text_form)
        from realtime.extractors.words import WordEmbedderOptions

        fields["text_backend"] = WordEmbedderOptions().backend  # vectors differ by ~1e-7
        if not self.transcripts:  # recognised words depend on Whisper's audio context
            from realtime.extractors.asr import AsrOptions

            fields["asr_window_pad_s"] = AsrOptions().window_pad_s
            fields["asr_max_tokens_per_s"] = AsrOptions().max_tokens_per_s
            fields["asr_loop_retry"] = 1  # looping results decoded again (asr.looped)
            fields.update({} if AsrOptions().model == "base" else {"asr_model": AsrOptions().model})
        if self.source == "tts":  # the synthetic speech itself
            from realtime.tts import DATASET_WORD_GAP_MS, DATASET_WORDS_PER_MINUTE

            fields["tts"] = (DATASET_WORDS_PER_MINUTE, DATASET_WORD_GAP_MS)
        blob = repr((BUILDER_VERSION, fields))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_labels(path: str | Path) -> tuple[list[Segment], list[str]]:
    """Rows of a label file, and one line per bad row (reported by the caller, then skipped).
    A speech labels file (path,corpus,speaker,emotion,intensity) is read whole or refused."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        rows = list(reader)
    if {"path", "emotion"} <= columns:
        return speech_segments(path), []
    mmsa = {"id", "text", "label", "mode"} <= columns
    timed = {"video_id", "segment", "start_s", "end_s", "label"} <= columns
    if not (mmsa or timed):
        raise DatasetError(
            f"{path} has columns {sorted(columns)}; expected id,text,label,mode "
            "or video_id,segment,start_s,end_s,label"
        )
    segments, problems = [], []
    for n, row in enumerate(rows, start=2):
        try:
            label = float(row["label"])
        except (TypeError, ValueError):
            problems.append(f"{path.name}:{n}: label {row.get('label')!r} is not a number")
            continue
        if not (math.isfinite(label) and -3.0 <= label <= 3.0):
            problems.append(f"{path.name}:{n}: label {label} outside [-3, 3]")
            continue
        if mmsa:
            seg_id, text = (row["id"] or "").strip(), (row["text"] or "").strip()
            split = MODES.get((row["mode"] or "").strip().lower())
            if not seg_id or split is None:
                problems.append(f"{path.name}:{n}: missing id or unknown mode {row.get('mode')!r}")
                continue
            video_id = seg_id.rsplit("_", 1)[0]
            segments.append(Segment(seg_id, text, label, split, video_id))
        else:
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except ValueError:
                problems.append(f"{path.name}:{n}: start_s/end_s are not numbers")
                continue
            if not end > start >= 0:
                problems.append(f"{path.name}:{n}: segment times {start}..{end} are not a span")
                continue
            seg_id = f"{row['video_id']}_{row['segment']}"
            split = MODES.get((row.get("mode") or "train").strip().lower(), "train")
            segments.append(Segment(seg_id, "", label, split, row["video_id"], start, end))
    return segments, problems


def speech_segments(path: Path) -> list[Segment]:
    """The clips of a speech labels file as segments: the label is the emotion's valence target
    (lab/emotion_targets.py), the video id the corpus, no transcript (words are recognised)."""
    from lab.speech_labels import LabelsError, read_speech_labels

    try:
        clips = read_speech_labels(path)
    except LabelsError as exc:
        raise DatasetError(str(exc)) from None
    return [Segment(c.id, "", c.target.valence, c.split, c.corpus, path=str(c.path)) for c in clips]


def find_media(
    media_dir: Path | None, seg: Segment
) -> tuple[Path, float | None, float | None] | None:
    """The segment's own clip (its path, DIR/VIDEO/CLIP.*, DIR/ID.*), or its whole video plus
    timings."""
    if seg.path:
        return (Path(seg.path), None, None) if Path(seg.path).is_file() else None
    if media_dir is None:
        return None
    clip = seg.id.rsplit("_", 1)[-1]
    for base in (media_dir / seg.video_id / clip, media_dir / seg.id):
        for suffix in MEDIA_SUFFIXES:
            if base.with_name(base.name + suffix).is_file():
                return base.with_name(base.name + suffix), None, None
    if seg.start_s is not None:
        for suffix in MEDIA_SUFFIXES:
            whole = media_dir / f"{seg.video_id}{suffix}"
            if whole.is_file():
                return whole, seg.start_s, seg.end_s
    return None


# ----------------------------------------------------------------------------- one segment
_EXTRACTORS = None


def _worker_init(with_face: bool, asr_threads: int, text_adapter: dict | None = None) -> None:
    global _EXTRACTORS
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from realtime.extractors import Extractors

    _EXTRACTORS = Extractors.load(
        with_face=with_face, asr_threads=asr_threads, text_adapter=text_adapter
    )


def _records(
    seg: Segment, options: BuildOptions, media_dir: Path | None
) -> tuple[Iterator, bool, bool]:
    from realtime.replay import audio_blocks

    if options.source == "tts":
        from realtime.tts import DATASET_WORD_GAP_MS, DATASET_WORDS_PER_MINUTE, synthesize_speech

        speech = synthesize_speech(
            seg.text, words_per_minute=DATASET_WORDS_PER_MINUTE, word_gap_ms=DATASET_WORD_GAP_MS
        )
        quiet = np.zeros(
            int(0.3 * 16000), np.float32
        )  # a little silence on both sides, as in a clip
        return iter(audio_blocks(np.concatenate([quiet, speech, quiet]))), False, True
    from realtime.sources.base import records
    from realtime.sources.media_file import MediaFileOptions, MediaFileSource
    from realtime.types import AudioBlock, VideoFrame

    found = find_media(media_dir, seg)
    if found is None:
        raise DatasetError(f"no media for {seg.id} in {seg.path or media_dir}")
    path, start_s, end_s = found
    source = MediaFileSource(MediaFileOptions(path))
    source.start()

    def gen():
        try:
            for record in records(source):
                t = record.t_s if isinstance(record, VideoFrame) else record.t_start_s
                if start_s is not None and (t < start_s or t >= end_s):
                    if t >= end_s:
                        return
                    continue
                shift = start_s or 0.0
                if isinstance(record, VideoFrame):
                    yield VideoFrame(record.seq, t - shift, record.image)
                else:
                    yield AudioBlock(record.seq, t - shift, record.samples)
        finally:
            source.stop()

    return gen(), source.has_video, source.has_audio


def build_one(args: tuple[Segment, BuildOptions, str | None, str]) -> tuple[str, str | None]:
    """Extract one segment into its cache file; returns (id, problem or None). Runs in a worker."""
    seg, options, media_dir, cache_file = args
    from realtime.replay import extract

    try:
        if options.source == "tts" and not seg.text:
            return seg.id, "empty transcript (nothing to speak)"
        records, has_video, has_audio = _records(
            seg, options, Path(media_dir) if media_dir else None
        )
        result = extract(
            records, _EXTRACTORS, has_video=has_video, has_audio=has_audio,
            step_hz=options.step_hz, pause_ms=options.pause_ms,
            transcript=seg.text if options.transcripts else None, text_hold=options.text_hold,
        )  # fmt: skip
    except Exception as exc:  # one bad file is reported and skipped, never the whole build
        return seg.id, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    arrays = result.arrays()
    if not arrays:
        return seg.id, "no steps (empty or unreadable media)"
    arrays = {k: v[-options.max_steps :] for k, v in arrays.items()}
    kept = result.steps[-options.max_steps :]
    tmp = cache_file + ".tmp.npz"
    np.savez(
        tmp,
        **arrays,
        utterance_steps=utterance_steps(kept, result.segments),
        voiced_f0=np.asarray([s.voiced_f0 for s in kept], np.float64).reshape(-1, 3),
        transcript=np.array(result.transcript),
        duration_s=np.array(result.duration_s),
    )
    os.replace(tmp, cache_file)
    return seg.id, None


def utterance_steps(steps, segments: list[tuple[float, float]]) -> np.ndarray:  # noqa: ANN001
    """(K, 2) step index ranges [first, last + 1) of the steps each speech segment overlaps, as
    the live utterance result takes them (realtime/stepper.py: StepRunner.steps_between)."""
    ranges = []
    for t0, t1 in segments:
        idx = [i for i, s in enumerate(steps) if s.t_end_s > t0 and s.t_start_s < t1]
        if idx:
            ranges.append((idx[0], idx[-1] + 1))
    return np.asarray(ranges, np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- the whole set
def build(
    segments: list[Segment], options: BuildOptions, out: Path, *, media_dir: Path | None = None,
    workers: int = 2, cache_dir: Path | None = None, progress: bool = True,
    text_adapter: dict | None = None,
) -> dict:  # fmt: skip
    """Extract every segment (cached, resumable), then write the MMSA-format pickle at `out`.

    text_adapter: an encoder adapter (msrg.text_adapter) to embed words with; it keys the cache."""
    from tqdm import tqdm

    from msrg.text_adapter import adapter_digest

    options = replace(options, text_adapter=adapter_digest(text_adapter))

    named = all(s.path for s in segments)  # every clip named by its own path
    if options.source == "media" and not named and (media_dir is None or not media_dir.is_dir()):
        raise DatasetError(f"--media {media_dir} is not a folder")
    if cache_dir is None:
        from realtime.cache import cache_dir as default_cache

        cache_dir = default_cache() / "features"  # shared with lab.evaluate, which reuses it
    cache = cache_dir / options.key()
    cache.mkdir(parents=True, exist_ok=True)
    files = {
        s.id: str(cache / f"{hashlib.sha1(s.id.encode()).hexdigest()[:16]}.npz") for s in segments
    }
    todo = [
        (s, options, str(media_dir) if media_dir else None, files[s.id])
        for s in segments
        if not os.path.exists(files[s.id])
    ]
    problems: dict[str, str] = {}
    if todo:
        with_face = options.source == "media"
        asr_threads = max(1, (os.cpu_count() or 2) // max(1, workers))
        if workers > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(
                workers, initializer=_worker_init, initargs=(with_face, asr_threads, text_adapter)
            ) as pool:
                for seg_id, problem in tqdm(
                    pool.imap_unordered(build_one, todo, chunksize=4),
                    total=len(todo),
                    desc="segments",
                    disable=not progress,
                ):
                    if problem:
                        problems[seg_id] = problem
        else:
            _worker_init(with_face, asr_threads, text_adapter)
            for item in tqdm(todo, desc="segments", disable=not progress):
                seg_id, problem = build_one(item)
                if problem:
                    problems[seg_id] = problem
    data = _assemble(segments, files, options)
    with open(out, "wb") as f:
        pickle.dump(data, f)
    counts = {split: len(d["id"]) for split, d in data.items()}
    return {"counts": counts, "problems": problems, "cache": str(cache)}


def _pad(loaded: list, key: str) -> np.ndarray:
    """Stack per-segment arrays (T_i, ...) into (N, max T_i, ...), zero-padded at the end."""
    steps = max(len(z[key]) for z in loaded)
    out = np.zeros((len(loaded), steps, *loaded[0][key].shape[1:]), np.float32)
    for i, z in enumerate(loaded):
        out[i, : len(z[key])] = z[key]
    return out


def _assemble(segments: list[Segment], files: dict[str, str], options: BuildOptions) -> dict:
    data = {}
    for split in ("train", "valid", "test"):
        rows = [s for s in segments if s.split == split and os.path.exists(files[s.id])]
        if not rows:
            continue
        loaded = [np.load(files[s.id]) for s in rows]
        data[split] = {
            "text": _pad(loaded, "text"),
            "audio": _pad(loaded, "audio"),
            "vision": _pad(loaded, "visual"),
            "mask": _pad(loaded, "mask"),
            "valid": _pad(loaded, "valid"),
            "regression_labels": np.asarray([s.label for s in rows], np.float32),
            "id": [s.id for s in rows],
            "raw_text": [s.text for s in rows],
            "asr_text": [str(z["transcript"]) for z in loaded],
            # speech segments as step ranges and each step's voiced F0 frames (count, sum, sum of
            # squares) for the voice readouts; None where the cache predates them
            **{key: [z[key] if key in z.files else None for z in loaded]
               for key in ("utterance_steps", "voiced_f0")},
            "text_adapter": options.text_adapter,
        }
    return data
