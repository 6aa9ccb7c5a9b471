"""Shared test settings: offscreen Qt, no hub access, deterministic torch threads, and LSL kept on
loopback (every test process and its children inherit LSLAPICFG before pylsl is loaded)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Forced, not a default: a developer's own lab configuration must not carry test streams out.
os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Eager at B > 1 on a shared 2-core runner: two torch threads contend with everything else
    and made the parity runs several times slower. Restored after the module that asks for it
    (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def extractors():
    """The real extractors (face, Whisper, MiniLM), loaded once for every module that runs the
    pipeline on media: each load costs seconds."""
    import torch

    from realtime.extractors import Extractors

    torch.set_num_threads(1)
    return Extractors.load()
