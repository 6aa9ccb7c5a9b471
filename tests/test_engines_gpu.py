"""TensorRT parity with eager PyTorch. Runs on a machine with an NVIDIA GPU and torch-tensorrt:

    pytest -m gpu tests/test_engines_gpu.py

Everywhere else every test is skipped with the reason (the default run deselects `gpu` anyway).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from test_engines import (  # tests/ is on sys.path (rootdir conftest, no __init__)
    L,
    as_numpy,
    make_checkpoint,
    random_steps,
    random_utterance,
)

from engines import Engine, load_engine
from engines import tensorrt as trt_engine
from engines.artefacts import MANIFEST, artefact_root

GAPS = trt_engine.missing()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(bool(GAPS), reason=f"TensorRT cannot run here: {'; '.join(GAPS)}"),
]
TOLERANCE = {False: 1e-3, True: 2e-2}  # fp16 -> max abs difference allowed against eager
N_STEPS = 500


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt_gpu") / "msrg.pt", seed=0)


@pytest.fixture(scope="module")
def eager_engine(checkpoint: Path) -> Engine:
    return load_engine("eager", checkpoint)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 4])
def test_tensorrt_matches_eager(
    checkpoint: Path, eager_engine: Engine, batch: int, fp16: bool
) -> None:
    engine = load_engine("tensorrt", checkpoint, batch_size=batch, fp16=fp16)
    tol = TOLERANCE[fp16]
    s_trt, s_eager = engine.initial_state(batch), eager_engine.initial_state(batch)
    worst = 0.0
    for inputs in random_steps(batch, N_STEPS, seed=batch):
        r_trt, s_trt = engine.step(s_trt, inputs)
        r_eager, s_eager = eager_engine.step(s_eager, inputs)
        worst = max(
            worst,
            np.abs(r_trt.intensity - r_eager.intensity).max(),
            np.abs(r_trt.modality_weights - r_eager.modality_weights).max(),
        )
    assert worst < tol
    for n_steps in (1, 17, L + 13):
        utt = random_utterance(batch, n_steps, seed=n_steps)
        got, want = engine.utterance(utt), eager_engine.utterance(utt)
        np.testing.assert_allclose(got.final_intensity, want.final_intensity, atol=tol, rtol=0)
        np.testing.assert_allclose(
            got.utterance_intensity, want.utterance_intensity, atol=tol, rtol=0
        )


def test_tensorrt_step_does_not_mutate_state(checkpoint: Path) -> None:
    engine = load_engine("tensorrt", checkpoint, batch_size=2)
    state = engine.initial_state(2)
    for inputs in random_steps(2, 5, seed=11):
        _, state = engine.step(state, inputs)
    snapshot = as_numpy(state.tensors)
    nxt = random_steps(2, 1, seed=12)[0]
    first, _ = engine.step(state, nxt)
    second, _ = engine.step(state, nxt)
    for a, b in zip(snapshot, as_numpy(state.tensors)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.intensity, second.intensity)


def test_tensorrt_rebuilds_for_another_version(
    checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_engine("tensorrt", checkpoint)
    manifest_path = artefact_root(checkpoint) / "tensorrt-fp32-b1" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["key"]["versions"]["tensorrt"] = "0.0-older"
    manifest_path.write_text(json.dumps(manifest))
    caplog.set_level(logging.INFO, logger="engines")
    load_engine("tensorrt", checkpoint)
    assert "stale" in caplog.text and "versions" in caplog.text


def test_auto_picks_tensorrt(checkpoint: Path) -> None:
    engine = load_engine("auto", checkpoint)
    assert engine.name == "tensorrt-fp32"
    assert "NVIDIA GPU and torch-tensorrt present" in engine.selection_note


def test_wrong_batch_is_a_clear_error(checkpoint: Path) -> None:
    engine = load_engine("tensorrt", checkpoint, batch_size=1)
    with pytest.raises(ValueError, match="compiled for batch size 1"):
        engine.initial_state(3)
