"""Shared test settings: offscreen Qt, no hub access, deterministic torch threads, and LSL kept on
loopback (every test process and its children inherit LSLAPICFG before pylsl is loaded)."""

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Forced, not a default: a developer's own lab configuration must not carry test streams out.
os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))
