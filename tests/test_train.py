"""Training on synthetic MMSA-format data: the model learns a known function; bad files fail clearly."""

import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from lab.train import TrainOptions, train
from msrg.config import MSRGConfig
from msrg.data import DataFormatError, load_mmsa, make_synthetic_mmsa


def test_learns_a_known_function(tmp_path):
    path = make_synthetic_mmsa(tmp_path / "syn.pkl", dims=(12, 5, 6), steps=12, sizes=(192, 64, 64))
    splits = load_mmsa(path)
    config = MSRGConfig(text_dim=12, audio_dim=5, visual_dim=6, d_model=32, window=4, ulf_hidden=16)
    result = train(config, splits, TrainOptions(epochs=6, batch_size=32, progress=False))
    std = float(np.std(splits["valid"].labels))
    assert result.metrics["valid"]["mae"] < 0.5 * std
    assert result.metrics["valid"]["corr"] > 0.8


def test_wrong_keys_and_shapes_are_clear(tmp_path):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": {"text": np.zeros((2, 3, 4))}, "valid": {}, "test": {}}, f)
    with pytest.raises(DataFormatError, match="lacks key"):
        load_mmsa(path)
    with open(path, "wb") as f:
        pickle.dump(
            {
                "train": {
                    "text": np.zeros((2, 3)),
                    "audio": np.zeros((2, 3, 1)),
                    "vision": np.zeros((2, 3, 1)),
                    "regression_labels": np.zeros(2),
                }
            },
            f,
        )
    with pytest.raises(DataFormatError, match="shape"):
        load_mmsa(path, ("train",))


def test_cli_reports_dimension_mismatch_in_one_line(tmp_path):
    path = make_synthetic_mmsa(tmp_path / "syn.pkl", dims=(12, 5, 6), steps=6, sizes=(8, 4, 4))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.train",
            "--data",
            str(path),
            "--preset",
            "mosi",
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "text 768" in lines[0] and "text 12" in lines[0]


def test_unaligned_audio_is_pooled_onto_text_steps(tmp_path):
    n, steps = 3, 5
    data = {
        s: {
            "text": np.ones((n, steps, 4), np.float32),
            "audio": np.arange(n * 20 * 2, dtype=np.float32).reshape(n, 20, 2),
            "vision": np.ones((n, steps, 3), np.float32),
            "audio_lengths": np.array([20, 10, 0]),
            "regression_labels": np.zeros(n, np.float32),
        }
        for s in ("train", "valid", "test")
    }
    path = tmp_path / "unaligned.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f)
    sets = load_mmsa(path)
    audio = sets["train"].audio
    assert audio.shape == (n, steps, 2)
    raw = data["train"]["audio"]
    assert np.allclose(audio[0, 0], raw[0, 0:4].mean(0))
    assert np.allclose(audio[1, 0], raw[1, 0:2].mean(0))
    assert (audio[2] == 0).all()


def test_several_files_join_split_by_split(tmp_path):
    from lab.train import load_splits

    a = make_synthetic_mmsa(tmp_path / "a.pkl", dims=(4, 3, 2), steps=6, sizes=(8, 4, 4), seed=1)
    b = make_synthetic_mmsa(tmp_path / "b.pkl", dims=(4, 3, 2), steps=9, sizes=(5, 3, 2), seed=2)
    joined = load_splits([str(a), str(b)])
    one, two = load_mmsa(a), load_mmsa(b)
    assert [len(joined[s]) for s in ("train", "valid", "test")] == [13, 7, 6]
    train = joined["train"]
    assert train.text.shape == (13, 9, 4)  # padded to the longer file
    np.testing.assert_array_equal(train.text[:8, :6], one["train"].text)
    assert train.valid[:8, 6:].sum() == 0  # padding is not a real step
    np.testing.assert_array_equal(train.audio[8:], two["train"].audio)
    np.testing.assert_array_equal(train.labels, np.r_[one["train"].labels, two["train"].labels])
    c = make_synthetic_mmsa(tmp_path / "c.pkl", dims=(5, 3, 2), steps=6, sizes=(4, 2, 2))
    with pytest.raises(DataFormatError, match="different feature sizes"):
        load_splits([str(a), str(c)])


def test_progressive_and_smooth_step_losses_lower_jitter(tmp_path):
    """Same data, seed and settings: supervising every step (with smoothness) gives a calmer curve
    than supervising only the steps' mean, and the options reach the checkpoint's meta."""
    path = make_synthetic_mmsa(tmp_path / "syn.pkl", dims=(12, 5, 6), steps=12, sizes=(192, 64, 64))
    splits = load_mmsa(path)
    config = MSRGConfig(text_dim=12, audio_dim=5, visual_dim=6, d_model=32, window=4, ulf_hidden=16)
    jitter = {}
    for name, extra in (("mean", {}), ("progressive", {"aux_target": "progressive", "smooth_weight": 1.0})):
        options = TrainOptions(epochs=4, batch_size=32, progress=False, threads=1, **extra)
        jitter[name] = train(config, splits, options).metrics["valid_curve"]["jitter"]
    assert jitter["progressive"] < 0.7 * jitter["mean"], jitter


def test_bad_step_loss_options_fail_clearly():
    with pytest.raises(ValueError, match="aux target"):
        TrainOptions(aux_target="last")
    with pytest.raises(ValueError, match="smooth weight"):
        TrainOptions(smooth_weight=-1.0)


def test_continuing_from_a_model_keeps_it_when_no_epoch_beats_it(tmp_path):
    """Fine-tuning (--init): the start is scored as epoch 0 and kept, with its normalisation,
    when training only makes it worse (here a learning rate far too large)."""
    import torch

    path = make_synthetic_mmsa(tmp_path / "syn.pkl", dims=(12, 5, 6), steps=12, sizes=(192, 64, 64))
    splits = load_mmsa(path)
    config = MSRGConfig(text_dim=12, audio_dim=5, visual_dim=6, d_model=32, window=4, ulf_hidden=16)
    start = train(config, splits, TrainOptions(epochs=6, batch_size=32, progress=False)).model
    shifted = {s: replace(d, text=d.text + 5.0) for s, d in splits.items()}  # other feature scale
    bad = TrainOptions(epochs=1, batch_size=32, lr=50.0, grad_clip=0.0, progress=False)
    result = train(config, shifted, bad, init=start)
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert result.history[1]["valid_mae"] > result.history[0]["valid_mae"]
    assert result.best_epoch == 0
    for name, value in start.state_dict().items():  # weights and normalisation buffers alike
        assert torch.equal(result.model.state_dict()[name], value), name
    with pytest.raises(ValueError, match="architecture"):
        train(replace(config, d_model=16), splits, bad, init=start)


def test_cli_continues_from_a_checkpoint(tmp_path):
    path = make_synthetic_mmsa(tmp_path / "syn.pkl", dims=(12, 5, 6), steps=8, sizes=(32, 16, 16))
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    base = [sys.executable, "-m", "lab.train", "--data", str(path), "--epochs", "1"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, "--threads", "1", *extra], capture_output=True, text=True, timeout=120
        )

    assert run("--preset", "data", "--d-model", "16", "--out", str(first)).returncode == 0
    done = run("--init", str(first), "--lr", "1e-4", "--out", str(second))
    assert done.returncode == 0, done.stderr
    from msrg.checkpoint import load_checkpoint

    loaded, start = load_checkpoint(second), load_checkpoint(first)
    assert loaded.config == start.config  # the preset flag's default did not replace it
    assert loaded.meta["init"] == {"path": str(first), "digest": start.digest}
    refused = run("--init", str(first), "--d-model", "32", "--out", str(second))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--init" in refused.stderr
    missing = run("--init", str(tmp_path / "none.pt"), "--out", str(second))
    assert missing.returncode == 2 and "--init" in missing.stderr and "does not exist" in missing.stderr
