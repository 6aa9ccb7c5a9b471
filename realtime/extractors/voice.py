"""Streaming voice descriptors: openSMILE eGeMAPSv02 low-level descriptors (25 at 100 frames/s).

openSMILE's eGeMAPS graph is not chunk-invariant (pitch goes through a Viterbi smoother, and
jitter, shimmer and the formant amplitudes are gated by that pitch), so running it on each block
alone corrupts frames at the block edges. Instead one graph runs for the whole stream through
openSMILE's streaming C API (`opensmile.core.lib.OpenSMILE`): its blocking `run()` loop lives on
a thread of its own, each block's samples are written into its external audio source as they
arrive, and its external sink hands back every frame as soon as the graph has finalised it. No
history is ever recomputed. Measured on espeak-ng speech (tests/test_voice_features.py): the
frames are bit-identical to the whole-file pass (`opensmile.Smile.process_signal`), and a frame
is ready ~80 ms (7 to 9 frames) after its audio was written. The previous design re-ran the graph
on 1 s of history for every 100 ms of new audio: ~0.2 of a core per stream, now ~0.03.

A stream starts with the first block after a reset, and ends at `flush()` (end of input: the
graph drains and the last frames come out), at `reset()`, or at a gap in block times (its unsent
frames are dropped, as a fresh stream restarts the frame grid). `close()` ends the run thread and
frees the openSMILE handle; use the extractor as a context manager or call `close()` (the
lifecycle is realtime/stage.py's).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from msrg.config import LIVE_AUDIO_DIM
from realtime.stage import Stage
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VoiceFrames

log = logging.getLogger(__name__)

HOP_S = 0.010  # eGeMAPS frame step
HOP_SAMPLES = int(round(HOP_S * SAMPLE_RATE_HZ))  # 160
_SOURCE_COMPONENT = "extsource"
_SINK_COMPONENT = "extsink"
_INT16_MAX = 32767
# After a write, wait (without CPU) this long at most for the graph to catch up, so a push
# returns the frames its own audio finalised rather than leaving them to the next push.
_CATCH_UP_S = 0.02
_LAG_FRAMES = 10  # frames the graph holds back behind the newest audio (measured: 7 to 9)
_WRITE_RETRY_S = 2.0  # a full input buffer that does not drain in this long is an error


class VoiceFeatureError(RuntimeError):
    """openSMILE is missing or failed; the message is one actionable line."""


@dataclass(frozen=True)
class VoiceOptions:
    min_new_s: float = 0.1  # audio gathered before it is written to the graph (fewer wake-ups)
    gap_tolerance_s: float = 0.02  # a larger jump in block times restarts the stream

    def __post_init__(self) -> None:
        for name in ("min_new_s", "gap_tolerance_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"VoiceOptions.{name} must be >= 0, got {getattr(self, name)}")


class _SmileStream:
    """One openSMILE eGeMAPSv02 LLD graph, run on its own thread and fed from memory."""

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
        shared = os.path.join(smile.default_config_root, "shared")
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
        try:
            self._engine.initialize(config_file=smile.config_path, options=options, loglevel=0)
        except BaseException:
            self._engine.free()  # a graph that failed to build still holds its handle
            raise
        self._ready = threading.Condition()
        self._rows: list[np.ndarray] = []  # frames computed and not yet taken, each (25,)
        self._produced = 0  # frames computed since the stream started
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def closed(self) -> bool:
        """True once openSMILE's native handle is freed (the wrapper drops its pointer)."""
        return self._closed and getattr(self._engine, "_smileobj", None) is None

    def start(self) -> None:
        """A fresh stream: the graph's run loop on a new thread, waiting for audio."""
        if self._closed:
            raise VoiceFeatureError("the voice extractor was closed; create a new one")
        assert self._thread is None
        # The wrapper keeps every registered callback alive and `reset` demands registering
        # again, so without trimming each restarted stream would leak one closure.
        getattr(self._engine, "_callbacks", []).clear()
        self._engine.external_sink_set_callback_ex(_SINK_COMPONENT, self._on_frame)
        self._rows, self._produced, self._error = [], 0, None
        self._thread = threading.Thread(target=self._run, name="voice-smile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._engine.run()  # returns once end of input is set and the graph has drained
        except Exception as exc:  # reported by the next write or take, on the caller's thread
            self._error = f"openSMILE stopped: {str(exc).splitlines()[0] if str(exc) else exc}"
        finally:
            with self._ready:
                self._ready.notify_all()

    def _on_frame(self, data: np.ndarray, _meta: object) -> None:
        row = np.array(data, dtype=np.float32).reshape(-1)  # a copy: openSMILE reuses `data`
        with self._ready:
            self._rows.append(row)
            self._produced += 1
            self._ready.notify_all()

    def write(self, samples: np.ndarray, total_samples: int) -> None:
        """Feed float samples in [-1, 1); waits briefly for the frames they finalise."""
        if self._closed:
            raise VoiceFeatureError("the voice extractor was closed; create a new one")
        self._check()
        # Truncating float -> int16 as `Smile.process_signal` does: formant bandwidths are so
        # sensitive that rounding instead changes some by tens of Hz.
        pcm = np.clip(samples * 32768.0, -_INT16_MAX - 1, _INT16_MAX).astype("<i2").tobytes()
        waited = 0.0
        while not self._engine.external_audio_source_write_data(_SOURCE_COMPONENT, pcm):
            if waited >= _WRITE_RETRY_S:  # the buffer grows on demand, so this is a stall
                raise VoiceFeatureError("openSMILE stopped taking audio (its input buffer stays "
                                        "full); restart the session")  # fmt: skip
            self._check()
            time.sleep(0.005)
            waited += 0.005
        expected = total_samples // HOP_SAMPLES - _LAG_FRAMES
        with self._ready:
            self._ready.wait_for(
                lambda: self._produced >= expected or self._error is not None, _CATCH_UP_S
            )

    def take(self) -> np.ndarray:
        """The frames computed since the last take. -> (N, 25) float32"""
        with self._ready:
            rows, self._rows = self._rows, []
        self._check()
        if not rows:
            return np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32)
        return np.stack(rows)

    def finish(self) -> np.ndarray:
        """End of input: let the graph drain, end its thread, ready it for a new stream.
        -> the frames not yet taken, (N, 25)"""
        if self._thread is None:
            return np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32)
        self._engine.external_audio_source_set_eoi(_SOURCE_COMPONENT)
        self._thread.join()
        self._thread = None
        frames = self.take()
        self._engine.reset()  # ready for the next stream without re-parsing the config
        return frames

    def close(self) -> None:
        """End the stream if one runs and release the openSMILE handle (idempotent)."""
        if self._closed:
            return
        try:
            self.finish()
        except VoiceFeatureError:
            pass  # closing: the error was reported where it happened
        finally:
            self._closed = True
            self._engine.free()

    def _check(self) -> None:
        if self._error is not None:
            raise VoiceFeatureError(self._error)


class VoiceExtractor(Stage[AudioBlock]):
    """push(AudioBlock) -> VoiceFrames of the frames that became final; a stage
    (realtime/stage.py): flush at the end of input (then reset), close frees openSMILE.

    Frame k of a stream starts at t0 + k * HOP_S, where t0 is the stream time of the first
    sample pushed since the last reset; frame windows are 20 ms (spectral) or 60 ms (pitch).
    """

    def __init__(self, options: VoiceOptions | None = None) -> None:
        self.options = options or VoiceOptions()
        self._smile = _SmileStream()
        self.feature_names = self._smile.feature_names
        self._t0_s: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the stream: its frames not yet returned are dropped."""
        if self._smile.running:
            self._smile.finish()
        self._t0_s = None
        self._pending: list[np.ndarray] = []  # audio not yet written to the graph
        self._n_pending = 0
        self._n_samples = 0  # samples pushed since reset
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
            self._smile.start()
        samples = np.asarray(block.samples, dtype=np.float32)
        self._pending.append(samples)
        self._n_pending += len(samples)
        self._n_samples += len(samples)
        min_new = int(round(self.options.min_new_s * SAMPLE_RATE_HZ))
        if self._n_pending >= max(min_new, 1):
            self._write_pending()
        return self._frames(self._smile.take())

    def flush(self) -> VoiceFrames:
        """End of stream: emit the frames still inside the graph (as the whole-file pass ends);
        then reset."""
        if self._t0_s is None:
            return self._frames(None)
        self._write_pending()
        frames = self._frames(self._smile.finish())
        self.reset()
        return frames

    def close(self) -> None:
        """End openSMILE's run thread and free its handle (idempotent)."""
        self._smile.close()

    @property
    def closed(self) -> bool:
        """True once close() has freed openSMILE's native handle."""
        return self._smile.closed

    def _write_pending(self) -> None:
        if not self._pending:
            return
        audio = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._n_pending = [], 0
        self._smile.write(audio, self._n_samples)

    def _frames(self, values: np.ndarray | None) -> VoiceFrames:
        if values is None:
            values = np.zeros((0, LIVE_AUDIO_DIM), dtype=np.float32)
        t0_s = self._t0_s if self._t0_s is not None else 0.0
        frames = VoiceFrames(
            t_start_s=t0_s + self._next_frame * HOP_S,
            hop_s=HOP_S,
            values=np.ascontiguousarray(values, dtype=np.float32),  # (N, 25)
        )
        self._next_frame += len(values)
        return frames
