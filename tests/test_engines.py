"""Engines behind one contract: ONNX Runtime matches eager PyTorch over long runs with state
carried, artefacts are never used stale or corrupted, and `auto` says what it picked."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines import (
    ArtefactError,
    Engine,
    EngineUnavailable,
    StepInputs,
    UtteranceInputs,
    load_engine,
)
from engines import tensorrt as trt_engine
from engines.artefacts import MANIFEST, artefact_root
from engines.export import main as export_main
from msrg.checkpoint import save_checkpoint
from msrg.config import MSRGConfig
from msrg.model import MSRG

L = 48  # small max_utterance_steps keeps the utterance graph and its test cheap
CONFIG = MSRGConfig(max_utterance_steps=L)  # live feature dims, default architecture
N_STEPS = 500
STEP_TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, seed: int, config: MSRGConfig = CONFIG) -> Path:
    torch.manual_seed(seed)
    model = MSRG(config)
    # Non-trivial normalisation so the exported graph must carry the buffers correctly.
    for name, dim in config.dims.items():
        getattr(model, f"{name}_mean").copy_(torch.randn(dim) * 0.1)
        getattr(model, f"{name}_std").copy_(torch.rand(dim) + 0.5)
    return save_checkpoint(model.eval(), path, {"seed": seed})


def random_steps(batch: int, n: int, seed: int) -> list[StepInputs]:
    rng = np.random.default_rng(seed)
    dims = CONFIG.dims
    steps = []
    for _ in range(n):
        mask = (rng.random((batch, 3)) > 0.3).astype(np.float32)  # (B, 3), some all-absent rows
        steps.append(
            StepInputs(
                text=rng.standard_normal((batch, dims["text"])),
                audio=rng.standard_normal((batch, dims["audio"])),
                visual=rng.standard_normal((batch, dims["visual"])),
                mask=mask,
            )
        )
    return steps


def random_utterance(batch: int, n_steps: int, seed: int) -> UtteranceInputs:
    rng = np.random.default_rng(seed)
    dims = CONFIG.dims
    valid = np.ones((batch, n_steps), np.float32)
    if n_steps > 3:
        valid[0, -2:] = 0.0  # a stream whose utterance ended two steps early
    return UtteranceInputs(
        text=rng.standard_normal((batch, n_steps, dims["text"])),
        audio=rng.standard_normal((batch, n_steps, dims["audio"])),
        visual=rng.standard_normal((batch, n_steps, dims["visual"])),
        mask=(rng.random((batch, n_steps, 3)) > 0.3),
        valid=valid,
        intensity=rng.uniform(-3, 3, (batch, n_steps)),
        salience=rng.standard_normal((batch, n_steps)),
    )


def as_numpy(tensors: tuple) -> list[np.ndarray]:
    return [np.array(t.cpu() if isinstance(t, torch.Tensor) else t) for t in tensors]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "msrg.pt", seed=0)


@pytest.fixture(scope="module")
def onnx_engine(checkpoint: Path) -> Engine:
    return load_engine("onnx", checkpoint)  # exports on first use


@pytest.fixture(scope="module")
def eager_engine(checkpoint: Path) -> Engine:
    return load_engine("eager", checkpoint)


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_matches_eager_over_many_steps(
    onnx_engine: Engine, eager_engine: Engine, batch: int
) -> None:
    s_onnx, s_eager = onnx_engine.initial_state(batch), eager_engine.initial_state(batch)
    worst_intensity = worst_weights = worst_salience = 0.0
    for inputs in random_steps(batch, N_STEPS, seed=batch):
        r_onnx, s_onnx = onnx_engine.step(s_onnx, inputs)
        r_eager, s_eager = eager_engine.step(s_eager, inputs)
        assert r_onnx.intensity.shape == (batch,) and r_onnx.modality_weights.shape == (batch, 3)
        worst_intensity = max(worst_intensity, np.abs(r_onnx.intensity - r_eager.intensity).max())
        worst_weights = max(
            worst_weights, np.abs(r_onnx.modality_weights - r_eager.modality_weights).max()
        )
        worst_salience = max(worst_salience, np.abs(r_onnx.salience - r_eager.salience).max())
    assert worst_intensity < STEP_TOL
    assert worst_weights < STEP_TOL
    assert worst_salience < STEP_TOL
    # The carried state itself agrees after 500 steps, not only what it produces.
    for a, b in zip(as_numpy(s_onnx.tensors), as_numpy(s_eager.tensors)):
        np.testing.assert_allclose(a, b, atol=STEP_TOL, rtol=0)


def test_each_gru_cell_is_one_onnx_node(checkpoint: Path, onnx_engine: Engine) -> None:
    """The fused cells are what makes the ONNX step fast; a change that un-fuses them must show."""
    import onnx

    graph = onnx.load(str(checkpoint.with_suffix(".engines") / "onnx" / "step.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("GRU") == 3 * CONFIG.fe_layers + 1  # one per modality layer, one for TLF
    assert "Sigmoid" not in ops[: ops.index("GRU")]  # no cell arithmetic left before the first


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("n_steps", [0, 1, 17, L, L + 13])
def test_onnx_utterance_matches_eager(
    onnx_engine: Engine, eager_engine: Engine, batch: int, n_steps: int
) -> None:
    inputs = random_utterance(batch, n_steps, seed=n_steps)
    r_onnx, r_eager = onnx_engine.utterance(inputs), eager_engine.utterance(inputs)
    for field in ("utterance_intensity", "timestep_intensity", "final_intensity", "gate"):
        got, want = getattr(r_onnx, field), getattr(r_eager, field)
        assert got.shape == (batch,)
        np.testing.assert_allclose(got, want, atol=STEP_TOL, rtol=0, err_msg=field)


def test_long_utterance_keeps_the_last_L_steps(eager_engine: Engine) -> None:
    long = random_utterance(2, L + 20, seed=7)
    tail = UtteranceInputs(**{k: getattr(long, k)[:, -L:] for k in long.__dataclass_fields__})
    before = eager_engine.truncated_utterances
    got, want = eager_engine.utterance(long), eager_engine.utterance(tail)
    assert eager_engine.truncated_utterances == before + 1
    np.testing.assert_array_equal(got.final_intensity, want.final_intensity)


# --------------------------------------------------------------------------- states are values
@pytest.mark.parametrize("which", ["onnx", "eager"])
def test_step_does_not_mutate_its_input_state(
    onnx_engine: Engine, eager_engine: Engine, which: str
) -> None:
    engine = onnx_engine if which == "onnx" else eager_engine
    state = engine.initial_state(2)
    for inputs in random_steps(2, 5, seed=11):
        _, state = engine.step(state, inputs)
    snapshot = as_numpy(state.tensors)
    nxt = random_steps(2, 1, seed=12)[0]
    first, after = engine.step(state, nxt)
    second, _ = engine.step(state, nxt)  # re-run from the kept state, as the pipeline does
    for a, b in zip(snapshot, as_numpy(state.tensors)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.intensity, second.intensity)
    assert after is not state


def test_state_of_another_engine_is_refused(onnx_engine: Engine, eager_engine: Engine) -> None:
    with pytest.raises(ValueError, match="belongs to engine 'eager'"):
        onnx_engine.step(eager_engine.initial_state(1), random_steps(1, 1, seed=0)[0])


def test_results_are_float32_numpy(onnx_engine: Engine, eager_engine: Engine) -> None:
    for engine in (onnx_engine, eager_engine):
        result, _ = engine.step(engine.initial_state(1), random_steps(1, 1, seed=0)[0])
        for value in (result.intensity, result.modality_weights, result.salience):
            assert isinstance(value, np.ndarray) and value.dtype == np.float32


# --------------------------------------------------------------------------- selection
def test_auto_falls_back_and_says_why(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engines")
    engine = load_engine("auto", checkpoint)
    if trt_engine.missing():
        assert engine.name == "onnx"
        assert "TensorRT not used" in engine.selection_note
        assert "chose onnx" in engine.selection_note
    else:  # a GPU machine with torch-tensorrt: the same test checks the other branch
        assert engine.name.startswith("tensorrt")
    assert engine.selection_note in caplog.text


def test_tensorrt_here_is_a_one_line_error(checkpoint: Path) -> None:
    gaps = trt_engine.missing()
    if not gaps:
        pytest.skip("torch-tensorrt and CUDA are present; covered by tests/test_engines_gpu.py")
    with pytest.raises(EngineUnavailable) as info:
        load_engine("tensorrt", checkpoint)
    message = str(info.value)
    assert "\n" not in message
    assert "pip install -e .[tensorrt]" in message
    assert all(gap in message for gap in gaps)


def test_unknown_kind_is_refused(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="choose one of auto, onnx, tensorrt, eager"):
        load_engine("openvino", checkpoint)


def test_import_is_light() -> None:
    code = (
        "import sys, engines; "
        "heavy = [m for m in ('torch', 'torch_tensorrt', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- artefacts
@pytest.fixture()
def copied(checkpoint: Path, onnx_engine: Engine, tmp_path: Path) -> Path:
    """A copy of the checkpoint with its current ONNX artefacts (no export needed)."""
    ckpt = tmp_path / checkpoint.name
    shutil.copy2(checkpoint, ckpt)
    shutil.copytree(artefact_root(checkpoint), artefact_root(ckpt))
    return ckpt


def _one_step(engine: Engine) -> np.ndarray:
    result, _ = engine.step(engine.initial_state(1), random_steps(1, 1, seed=3)[0])
    return result.intensity


def test_current_artefacts_are_reused(copied: Path, caplog: pytest.LogCaptureFixture) -> None:
    step_file = artefact_root(copied) / "onnx" / "step.onnx"
    mtime = step_file.stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="engines")
    load_engine("onnx", copied)
    assert step_file.stat().st_mtime_ns == mtime
    assert "building" not in caplog.text


def test_stale_artefacts_are_rebuilt(copied: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_checkpoint(copied, seed=1)  # new weights under the same path: digest changes
    with pytest.raises(ArtefactError, match="stale: checkpoint_digest"):
        load_engine("onnx", copied, rebuild=False)
    caplog.set_level(logging.INFO, logger="engines")
    engine = load_engine("onnx", copied)
    assert "stale" in caplog.text and "checkpoint_digest" in caplog.text
    np.testing.assert_allclose(
        _one_step(engine), _one_step(load_engine("eager", copied)), atol=STEP_TOL, rtol=0
    )
    manifest = json.loads((artefact_root(copied) / "onnx" / MANIFEST).read_text())
    from msrg.checkpoint import file_digest

    assert manifest["key"]["checkpoint_digest"] == file_digest(copied)


def test_corrupted_artefact_is_refused_or_rebuilt(
    copied: Path, caplog: pytest.LogCaptureFixture
) -> None:
    step_file = artefact_root(copied) / "onnx" / "step.onnx"
    size = step_file.stat().st_size
    step_file.write_bytes(np.random.default_rng(0).bytes(size))  # same size, garbage bytes
    with pytest.raises(ArtefactError, match="corrupt: .*step.onnx does not match its recorded"):
        load_engine("onnx", copied, rebuild=False)
    caplog.set_level(logging.INFO, logger="engines")
    engine = load_engine("onnx", copied)
    assert "corrupt" in caplog.text
    np.testing.assert_allclose(
        _one_step(engine), _one_step(load_engine("eager", copied)), atol=STEP_TOL, rtol=0
    )


def test_garbage_manifest_is_refused(copied: Path) -> None:
    (artefact_root(copied) / "onnx" / MANIFEST).write_bytes(b"\x00\xffnot json")
    with pytest.raises(ArtefactError, match="corrupt: .*not readable JSON"):
        load_engine("onnx", copied, rebuild=False)


def test_export_cli(copied: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert export_main(["--checkpoint", str(copied), "--to", "onnx"]) == 0  # current: no rebuild
    if trt_engine.missing():
        caplog.set_level(logging.ERROR)
        assert export_main(["--checkpoint", str(copied), "--to", "tensorrt", "--fp16"]) == 1
        assert "pip install -e .[tensorrt]" in caplog.text
