"""`--list-devices`: the cameras and microphones this machine offers, as printable text."""

from __future__ import annotations

import importlib
import logging

from realtime.sources.camera import list_cameras

log = logging.getLogger(__name__)

CAMERA_PROBE_COUNT = 4  # indices 0..3: probing a missing index costs milliseconds, not seconds


def _microphone_lines() -> list[str]:
    try:
        # Imported by name so that this module works before (or without) the microphone source.
        microphone = importlib.import_module("realtime.sources.microphone")
        list_microphones = microphone.list_microphones
    except ModuleNotFoundError as exc:
        if exc.name == "realtime.sources.microphone":
            return ["  (microphone support is not part of this build)"]
        return [f"  (microphones cannot be listed: {exc}; install sounddevice and libportaudio2)"]
    except (ImportError, AttributeError) as exc:
        return [f"  (microphones cannot be listed: {exc})"]
    try:
        names = list_microphones()
    except Exception as exc:  # any audio back-end failure is reported here, not raised
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [f"  (microphones cannot be listed: {first}; is libportaudio2 installed?)"]
    return [f"  {name}" for name in names] or ["  (none found)"]


def describe_devices(max_camera_index: int = CAMERA_PROBE_COUNT) -> str:
    """Cameras (probed at indices below max_camera_index) and microphones, one per line."""
    cameras = list_cameras(max_index=max_camera_index)
    lines = [f"cameras (indices 0-{max_camera_index - 1} probed; use --camera INDEX):"]
    lines += [f"  {camera}" for camera in cameras] or ["  (none found; use --video FILE or --demo)"]
    lines.append("microphones:")
    lines += _microphone_lines()
    return "\n".join(lines)
