"""The one folder for files the project derives at run time (exported models, the demo clip)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "AFFECT_MONITOR_CACHE"


def cache_dir() -> Path:
    """`$AFFECT_MONITOR_CACHE` if set, else `~/.cache/affect-monitor`; created on first use."""
    override = os.environ.get(CACHE_ENV_VAR)
    folder = Path(override) if override else Path.home() / ".cache" / "affect-monitor"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
