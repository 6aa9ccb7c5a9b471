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


@pytest.fixture(scope="session")
def random_adapter():
    """random_adapter(embedder, seed=, rank=, alpha=, layers=) -> a random non-zero text adapter
    on the embedder's encoder, as lab.tune_text writes one (the embedder's PyTorch model is
    copied, not changed)."""
    import copy

    import torch

    from msrg.text_adapter import adapter_from, insert_low_rank

    def make(embedder, *, seed: int, rank: int, alpha: float, layers: list[int]) -> dict:  # noqa: ANN001
        torch.manual_seed(seed)
        bert = copy.deepcopy(embedder._model[0].auto_model)
        encoder = embedder.encoder
        wrapped = insert_low_rank(bert, rank=rank, alpha=alpha, layers=layers, encoder=encoder)
        for m in wrapped.values():
            torch.nn.init.normal_(m.lora_b, std=0.05)
        return adapter_from(wrapped, {"test": True}, encoder)

    return make
