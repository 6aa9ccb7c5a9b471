"""Streaming voice descriptors: openSMILE eGeMAPSv02 low-level descriptors (25 at 100 frames/s).

openSMILE's eGeMAPS graph is not chunk-invariant: pitch goes through a Viterbi smoother with a
40-frame buffer, and jitter, shimmer and the formant amplitudes are gated by that pitch. Running it
on each block alone corrupts frames at both block edges. So every computation runs on an
overlapping window: `history_s` of audio before the first frame not yet emitted, plus all new
audio, and the newest `lookahead_s` of frames are held back until more audio arrives (their
smoothing still depends on the future). Measured on espeak-ng speech: history 1.0 s with lookahead
0.1 s reproduces the whole-file pass exactly; 0.5 s / 0.05 s differs in ~10 % of frames (jitter,
shimmer, formant amplitudes); no window at all in ~40 %.

One openSMILE instance is initialised once and `reset` between windows: re-parsing the config for
every window (what `opensmile.Smile.process_signal` does) costs ~15 ms per call.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from msrg.config import LIVE_AUDIO_DIM
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VoiceFrames

log = logging.getLogger(__name__)

HOP_S = 0.010  # eGeMAPS frame step
HOP_SAMPLES = int(round(HOP_S * SAMPLE_RATE_HZ))  # 160
_SOURCE_COMPONENT = "extsource"
_SINK_COMPONENT = "extsink"
_INT16_MAX = 32767


class VoiceFeatureError(RuntimeError):
    """openSMILE is missing or failed; the message is one actionable line."""


@dataclass(frozen=True)
class VoiceOptions:
    history_s: float = 1.0  # audio kept before the first unemitted frame (Viterbi pitch context)
    lookahead_s: float = 0.1  # newest frames held back until this much later audio has arrived
    min_new_s: float = 0.1  # compute only once this much new audio is buffered (cost vs latency)
    gap_tolerance_s: float = 0.02  # a larger jump in block times restarts the stream

    def __post_init__(self) -> None:
        for name in ("history_s", "lookahead_s", "min_new_s", "gap_tolerance_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"VoiceOptions.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def history_samples(self) -> int:
        return int(round(self.history_s / HOP_S)) * HOP_SAMPLES  # whole hops keep grids aligned

    @property
    def lookahead_frames(self) -> int:
        return int(round(self.lookahead_s / HOP_S))


class _SmileLld:
    """One reusable openSMILE eGeMAPSv02 LLD graph fed from memory."""

    def __init__(self) -> None:
        try:
            import opensmile
            from opensmile.core.lib import OpenSMILE
        except ImportError as exc:
            raise VoiceFeatureError(
                f"openSMILE is not importable ({exc}); install it with `pip install opensmile`"
            ) from None
        smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )
        self.feature_names: tuple[str, ...] = tuple(smile.feature_names)
        if len(self.feature_names) != LIVE_AUDIO_DIM:
            raise VoiceFeatureError(
                f"eGeMAPSv02 LLD has {len(self.feature_names)} descriptors, "
                f"expected {LIVE_AUDIO_DIM}"
            )
        root = smile.default_config_root
        shared = os.path.join(root, "shared")
        options = {  # the same graph `Smile.process_signal` builds, with an in-memory source
            "source": os.path.join(shared, "standard_external_wave_input.conf.inc"),
            "sink": os.path.join(shared, "standard_external_data_output_single.conf.inc"),
            "sinkLevel": opensmile.FeatureLevel.LowLevelDescriptors.value,
            "bufferModeRbConf": os.path.join(shared, "BufferModeRb.conf.inc"),
            "frameModeFunctionalsConf": os.path.join(shared, "FrameModeFunctionals.conf.inc"),
            "sampleRate": SAMPLE_RATE_HZ,
            "nBits": 16,
        }
        self._engine = OpenSMILE()
        self._engine.initialize(config_file=smile.config_path, options=options, loglevel=0)

    def run(self, samples: np.ndarray) -> np.ndarray:
        """All LLD frames of one signal, as a fresh whole-signal pass would give. -> (F, 25)"""
        rows: list[np.ndarray] = []
        # The wrapper keeps every registered callback alive (and `reset` demands registering
        # again), so without trimming, a live session would leak one closure per window: ~36k
        # an hour, each holding that window's frames.
        getattr(self._engine, "_callbacks", []).clear()
        # Truncating float -> int16 as `Smile.process_signal` does: formant bandwidths are so
        # sensitive that rounding instead changes some by tens of Hz.
        pcm = np.clip(samples * 32768.0, -_INT16_MAX - 1, _INT16_MAX).astype("<i2")
        self._engine.external_sink_set_callback_ex(
            _SINK_COMPONENT, lambda data, _meta: rows.append(np.array(data, dtype=np.float32))
        )
        self._engine.external_audio_source_write_data(_SOURCE_COMPONENT, pcm.tobytes())
        self._engine.external_audio_source_set_eoi(_SOURCE_COMPONENT)
        self._engine.run()
        self._engine.reset()  # ready for the next window without re-parsing the config
        if not rows:
            return np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32)
        return np.stack(rows).reshape(len(rows), LIVE_AUDIO_DIM)

    def close(self) -> None:
        self._engine.free()


class VoiceExtractor:
    """push(AudioBlock) -> VoiceFrames of the frames that became final; flush at end; reset.

    Frame k of a stream starts at t0 + k * HOP_S, where t0 is the stream time of the first
    sample pushed since the last reset; frame windows are 20 ms (spectral) or 60 ms (pitch).
    """

    def __init__(self, options: VoiceOptions | None = None) -> None:
        self.options = options or VoiceOptions()
        self._smile = _SmileLld()
        self.feature_names = self._smile.feature_names
        self.reset()

    def reset(self) -> None:
        self._t0_s: float | None = None
        self._buf = np.zeros(0, dtype=np.float32)  # (B,) audio from sample _buf_start on
        self._buf_start = 0  # stream sample index of _buf[0]; always a multiple of HOP_SAMPLES
        self._n_samples = 0  # samples pushed since reset
        self._n_computed = 0  # _n_samples at the last computation
        self._next_frame = 0  # index of the first frame not yet emitted

    def push(self, block: AudioBlock) -> VoiceFrames:
        """Add audio; returns the frames that no longer depend on future audio (maybe none)."""
        if self._t0_s is not None:
            expected_s = self._t0_s + self._n_samples / SAMPLE_RATE_HZ
            if abs(block.t_start_s - expected_s) > self.options.gap_tolerance_s:
                log.warning(
                    "voice: audio gap of %.3f s at t=%.3f s; restarting the frame grid",
                    block.t_start_s - expected_s,
                    block.t_start_s,
                )
                self.reset()
        if self._t0_s is None:
            self._t0_s = block.t_start_s
        self._buf = np.concatenate([self._buf, np.asarray(block.samples, dtype=np.float32)])
        self._n_samples += len(block.samples)
        min_new = int(round(self.options.min_new_s * SAMPLE_RATE_HZ))
        if self._n_samples - self._n_computed < max(min_new, 1):
            return self._frames(np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32))
        return self._compute(final=False)

    def flush(self) -> VoiceFrames:
        """End of stream: emit the held-back frames (as the whole-file pass ends); then reset."""
        frames = self._compute(final=True) if self._t0_s is not None else self._frames(None)
        self.reset()
        return frames

    def close(self) -> None:
        self._smile.close()

    def _compute(self, final: bool) -> VoiceFrames:
        self._n_computed = self._n_samples
        window_start = max(0, self._next_frame * HOP_SAMPLES - self.options.history_samples)
        window = self._buf[window_start - self._buf_start :]
        values = self._smile.run(window)  # (F, 25), frame 0 starts at window_start
        first = window_start // HOP_SAMPLES
        ready = first + len(values) - (0 if final else self.options.lookahead_frames)
        new = values[self._next_frame - first : max(ready - first, self._next_frame - first)]
        frames = self._frames(new)
        self._next_frame += len(new)
        # Keep only what the next window needs.
        keep_from = max(0, self._next_frame * HOP_SAMPLES - self.options.history_samples)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return frames

    def _frames(self, values: np.ndarray | None) -> VoiceFrames:
        if values is None:
            values = np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32)
        t0_s = self._t0_s if self._t0_s is not None else 0.0
        return VoiceFrames(
            t_start_s=t0_s + self._next_frame * HOP_S,
            hop_s=HOP_S,
            values=np.ascontiguousarray(values, dtype=np.float32),  # (N, 25)
        )
