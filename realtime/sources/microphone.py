"""Microphone capture with sounddevice (PortAudio), delivered as 16 kHz mono AudioBlocks.

The PortAudio callback runs on PortAudio's thread and must never block: it only stamps the block
on the stream clock and puts a copy into a drop-oldest queue. Resampling (when the device cannot
run at 16 kHz) happens in `read`, on the consumer's thread, with libswresample through PyAV,
which keeps filter state across blocks so block edges leave no clicks.

Block times are contiguous by sample count (t_next = t_start + n / rate) and re-anchored to the
clock only when they drift by more than `resync_s` (an overflow lost samples, or the device clock
runs off): per-callback clock readings jitter by milliseconds, and downstream extractors treat a
jump between blocks as a gap.

A device that opens but delivers nothing is reported lost by the pipeline (`sources.microphone =
"lost"`, a log line, a counted error) once `startup_grace_s` has passed without a block: the first
silence after opening is start-up, not loss. A device that stops delivering (unplugged, its sound
server restarted) is closed and reopened by a watcher thread, with backoff, as the camera is;
when blocks flow again the pipeline logs "microphone back" and the status says "ok".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.clock import StreamClock
from realtime.queues import DropOldestQueue
from realtime.sources.base import MIN_AUDIO_RATE_HZ, Source, SourceError, SourceStats
from realtime.types import SAMPLE_RATE_HZ, AudioBlock

log = logging.getLogger(__name__)

_HINT = "run with --list-devices to see the microphones"


@dataclass(frozen=True)
class MicrophoneOptions:
    device: int | str | None = None  # PortAudio index or name substring; None: system default
    block_ms: float = 32.0  # 512 samples at 16 kHz: one silero VAD chunk per block
    queue_blocks: int = 64  # ~2 s of audio before the oldest block is dropped
    resync_s: float = 0.1  # re-anchor block times to the clock beyond this drift
    reopen: bool = True  # reopen a device that stops delivering
    reopen_after_s: float = 2.0  # no block for this long (after start-up): close and reopen
    reopen_backoff_s: tuple[float, float] = (0.5, 5.0)  # first and longest wait between tries

    def __post_init__(self) -> None:
        if self.block_ms <= 0 or self.queue_blocks < 1 or self.resync_s <= 0:
            raise ValueError("MicrophoneOptions: block_ms, queue_blocks, resync_s must be positive")
        if self.reopen_after_s <= 0 or not 0 < self.reopen_backoff_s[0] <= self.reopen_backoff_s[1]:
            raise ValueError("MicrophoneOptions: reopen_after_s and the backoff must be positive")


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the Python package is there but libportaudio is not
        raise SourceError(
            f"PortAudio is not available ({exc}); "
            "install it with `sudo apt-get install libportaudio2`"
        ) from None
    return sounddevice


def _describe(device: int | str | None) -> str:
    return "default input device" if device is None else f"input device {device!r}"


def list_microphones() -> list[str]:
    """'index: name (channels, default rate)' for every device with an input; [] if none."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        log.warning("could not list audio devices: %s", exc)
        return []
    return [
        f"{d['index']}: {d['name']} ({d['max_input_channels']} ch, "
        f"{d['default_samplerate']:.0f} Hz)"
        for d in devices
        if d["max_input_channels"] > 0
    ]


class MicrophoneSource(Source):
    """Live microphone on the session's stream clock. start, read, stop; stats."""

    name = "microphone"
    has_video = False
    has_audio = True
    startup_grace_s = 3.0  # PortAudio's first block can take a second or two on some systems

    def __init__(self, clock: StreamClock, options: MicrophoneOptions | None = None) -> None:
        self.options = options or MicrophoneOptions()
        self._clock = clock
        self._stream: Any = None
        self._stopped = False
        self._lock = threading.Lock()  # guards the counters shared with the callback
        self._stats = SourceStats()
        self._queue: DropOldestQueue[tuple[float, np.ndarray]] = DropOldestQueue(
            self.options.queue_blocks
        )
        self.device_rate_hz = SAMPLE_RATE_HZ
        self._resampler: Any = None
        self._t_next_in_s: float | None = None  # callback side: where the next block should start
        self._seq = 0
        self._t_out_s: float | None = None  # read side: stream time of the next output sample
        self._stream_lock = threading.Lock()  # the watcher replaces the stream; stop closes it
        self._last_block_s = 0.0  # monotonic time of the last callback (or start-up allowance)
        self._reopens = 0
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _resolve(self, sd: Any) -> tuple[dict, int]:
        """The device's description and the rate to open it at; PortAudioError or ValueError."""
        device = self.options.device
        info = sd.query_devices(device, kind="input")
        rate_hz = SAMPLE_RATE_HZ
        try:
            sd.check_input_settings(device, channels=1, dtype="float32", samplerate=rate_hz)
        except (sd.PortAudioError, ValueError):
            rate_hz = int(info["default_samplerate"])  # the device decides; resample in read
        if rate_hz < MIN_AUDIO_RATE_HZ:
            raise ValueError(f"it records at {rate_hz} Hz, below the {MIN_AUDIO_RATE_HZ} Hz "
                             "that speech analysis needs")  # fmt: skip
        return info, rate_hz

    def _error(self, exc: Exception) -> SourceError:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not list_microphones():
            message = f"no audio input device found ({message})"
        return SourceError(f"cannot open {_describe(self.options.device)}: {message}; {_HINT}")

    def probe(self) -> None:
        """Check that the device exists and can record speech, without opening it: a missing
        device is a one-line SourceError before the models load."""
        sd = _sounddevice()
        try:
            self._resolve(sd)
        except (sd.PortAudioError, ValueError) as exc:
            raise self._error(exc) from None

    def start(self) -> None:
        self._open()
        if self.options.reopen:
            self._watcher = threading.Thread(target=self._watch, name="microphone-watch",
                                             daemon=True)  # fmt: skip
            self._watcher.start()

    def _open(self) -> None:
        sd = _sounddevice()
        device = self.options.device
        try:
            info, rate_hz = self._resolve(sd)
            self._begin(rate_hz)
            self._t_next_in_s = None
            self._last_block_s = time.monotonic() + self.startup_grace_s  # start-up is not loss
            self._stream = sd.InputStream(
                device=device,
                channels=1,
                samplerate=rate_hz,
                dtype="float32",
                blocksize=int(round(rate_hz * self.options.block_ms / 1000.0)),
                callback=self._on_audio,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise self._error(exc) from None
        log.info("microphone: %s at %d Hz", info.get("name", device), rate_hz)

    def _watch(self) -> None:
        """Reopen the device when it stops delivering; back off while it cannot be opened."""
        first, longest = self.options.reopen_backoff_s
        while not self._watch_stop.wait(0.25):
            silent_s = time.monotonic() - self._last_block_s
            if silent_s <= self.options.reopen_after_s:
                continue
            log.warning("microphone: no audio for %.1f s; reopening it", silent_s)
            wait_s = first
            while not self._watch_stop.is_set():
                with self._stream_lock:
                    self._close_stream()
                    try:
                        self._open()
                    except SourceError as exc:
                        log.info("microphone: cannot reopen yet (%s); next try in %.1f s",
                                 exc, wait_s)  # fmt: skip
                    else:
                        self._reopens += 1
                        break
                self._watch_stop.wait(wait_s)
                wait_s = min(2 * wait_s, longest)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as exc:  # closing a vanished device must not stop the shutdown
            log.warning("microphone: error while closing: %s", exc)

    def _begin(self, device_rate_hz: int) -> None:
        """Prepare capture state for a device running at `device_rate_hz` (no device needed)."""
        self.device_rate_hz = device_rate_hz
        self._stopped = False
        if device_rate_hz != SAMPLE_RATE_HZ:
            import av

            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)

    def _on_audio(self, indata: np.ndarray, frames: int, _time_info: Any, status: Any) -> None:
        """PortAudio callback: stamp and enqueue, nothing else."""
        self._last_block_s = time.monotonic()
        duration_s = frames / self.device_rate_hz
        t_clock_s = self._clock.now() - duration_s  # start of this block by the clock
        overflow = bool(status and status.input_overflow)
        t_start_s = self._t_next_in_s
        if t_start_s is None or overflow or abs(t_clock_s - t_start_s) > self.options.resync_s:
            t_start_s = t_clock_s
        self._t_next_in_s = t_start_s + duration_s
        with self._lock:
            if overflow:
                self._stats.audio_overflows += 1
        self._queue.put((t_start_s, np.array(indata[:, 0], dtype=np.float32)))

    def read(self, timeout_s: float) -> AudioBlock | None:
        item = self._queue.get(timeout_s)
        if item is None:
            return None
        t_start_s, samples = item  # (N,) float32 at device_rate_hz
        if self._resampler is not None:
            t_start_s, samples = self._resample(t_start_s, samples)
        block = AudioBlock(self._seq, t_start_s, samples)
        self._seq += 1
        with self._lock:
            self._stats.audio_blocks += 1
        return block

    def _resample(self, t_in_s: float, samples: np.ndarray) -> tuple[float, np.ndarray]:
        import av

        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self.device_rate_hz
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        resampled = np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
        if self._t_out_s is None or abs(self._t_out_s - t_in_s) > self.options.resync_s:
            self._t_out_s = t_in_s  # output runs a few samples behind the input (filter delay)
        t_start_s = self._t_out_s
        self._t_out_s += len(resampled) / SAMPLE_RATE_HZ
        return t_start_s, resampled

    @property
    def finished(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(2.0)
        with self._stream_lock:
            self._close_stream()
            self._stopped = True  # last: a reopen in flight (_begin) cannot undo it

    def stats(self) -> SourceStats:
        with self._lock:
            return SourceStats(
                audio_blocks=self._stats.audio_blocks,
                audio_dropped=self._queue.dropped,
                audio_overflows=self._stats.audio_overflows,
                reopens=self._reopens,
            )
