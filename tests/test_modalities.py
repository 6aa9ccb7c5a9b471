"""The checkpoint's modality record: computed from the training masks, written by lab.train,
stamped onto older checkpoints, read on load (one log line when absent), and the shipped
checkpoint's record says it learned from words and voice, not faces."""

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from msrg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from msrg.config import MSRGConfig
from msrg.data import make_synthetic_mmsa
from msrg.modalities import MIN_TRAINED_SHARE, modality_record, modality_usage, use_mask
from msrg.model import MSRG

SHIPPED = Path(__file__).resolve().parent.parent / "msrg" / "weights" / "msrg-live.pt"
DIMS = (12, 5, 6)


def _masked_set(path: Path, visual_share: float) -> Path:
    """A synthetic set whose train split has faces in `visual_share` of its valid steps."""
    make_synthetic_mmsa(path, dims=DIMS, steps=10, sizes=(40, 8, 8))
    data = pickle.loads(path.read_bytes())
    for split in data.values():
        valid = split["valid"]
        mask = np.repeat(valid[:, :, None], 3, axis=2)
        flat = np.flatnonzero(valid.reshape(-1))
        keep = flat[: int(round(visual_share * len(flat)))]
        visual = np.zeros(valid.size, np.float32)
        visual[keep] = 1.0
        mask[:, :, 2] = visual.reshape(valid.shape)
        split["mask"] = mask
    path.write_bytes(pickle.dumps(data))
    return path


def test_record_counts_valid_steps_only_and_applies_the_rule():
    valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)  # 6 valid steps, 2 padding
    mask = np.zeros((2, 4, 3), np.float32)
    mask[..., 0] = 1.0  # text everywhere, padding included: padding must not count
    mask[0, :3, 1] = 1.0  # audio in 3 of 6
    mask[1, 2:, 2] = 1.0  # a "face" only in padding: 0 of 6
    record = modality_record(mask, valid)
    assert record["presence"] == {"text": 1.0, "audio": 0.5, "visual": 0.0}
    assert record["trained"] == ["text", "audio"]
    assert record["steps"] == 6 and "5%" in record["rule"]
    usage = modality_usage(record)
    assert usage["text"] == usage["audio"] == "used"
    assert usage["visual"].startswith("not used: checkpoint trained without faces")
    assert use_mask(usage).tolist() == [1.0, 1.0, 0.0]


def test_rule_threshold():
    valid = np.ones((1, 1000), np.float32)
    mask = np.ones((1, 1000, 3), np.float32)
    mask[0, : 1000 - int(MIN_TRAINED_SHARE * 1000), 2] = 0.0  # exactly 5 % faces: trained
    mask[0, : 1000 - int(MIN_TRAINED_SHARE * 1000) + 1, 1] = 0.0  # 4.9 % voice: not
    record = modality_record(mask, valid)
    assert record["trained"] == ["text", "visual"]
    assert "too few voice" in modality_usage(record)["audio"]


def test_train_writes_the_record(tmp_path):
    data = _masked_set(tmp_path / "set.pkl", visual_share=0.02)
    out = tmp_path / "m.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "lab.train", "--data", str(data), "--preset", "data",
         "--epochs", "1", "--d-model", "16", "--window", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = load_checkpoint(out)
    record = loaded.modality_record
    assert record["trained"] == ["text", "audio"]
    assert record["presence"]["text"] == 1.0 and 0.0 < record["presence"]["visual"] < 0.05
    assert loaded.trained_modalities == ("text", "audio")
    assert "too few faces" in loaded.modality_usage["visual"]


def _unrecorded_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = MSRG(MSRGConfig(text_dim=DIMS[0], audio_dim=DIMS[1], visual_dim=DIMS[2],
                            d_model=16, window=3, ulf_hidden=8)).eval()  # fmt: skip
    return save_checkpoint(model, path, {"note": "before the record existed"})


def test_checkpoint_without_record_assumes_all_with_one_log_line(tmp_path, caplog):
    path = _unrecorded_checkpoint(tmp_path / "old.pt")
    with caplog.at_level(logging.WARNING, logger="msrg.checkpoint"):
        first = load_checkpoint(path)
        load_checkpoint(path)  # a session loads a checkpoint more than once: still one line
    lines = [r.getMessage() for r in caplog.records if "modality record" in r.getMessage()]
    assert len(lines) == 1 and "assumed trained" in lines[0] and str(path) in lines[0]
    assert first.trained_modalities == ("text", "audio", "visual")
    assert set(first.modality_usage.values()) == {"used"}


def test_stamp_rewrites_meta_and_keeps_the_weights(tmp_path):
    path = _unrecorded_checkpoint(tmp_path / "old.pt")
    before = load_checkpoint(path)
    data = _masked_set(tmp_path / "set.pkl", visual_share=0.0)
    proc = subprocess.run(
        [sys.executable, "-m", "lab.modality_record", "--data", str(data),
         "--checkpoint", str(path)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trained: text, audio" in proc.stdout
    after = load_checkpoint(path)
    assert after.trained_modalities == ("text", "audio")
    assert after.modality_record["data"] == [str(data)]
    assert after.meta["note"] == "before the record existed"  # the rest of meta is kept
    a, b = before.model.state_dict(), after.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(tmp_path.glob("*.tmp"))


def test_stamp_errors_are_one_line(tmp_path):
    path = _unrecorded_checkpoint(tmp_path / "old.pt")
    other = tmp_path / "other.pkl"
    make_synthetic_mmsa(other, dims=(7, 5, 6), steps=4, sizes=(4, 2, 2))
    for data in (tmp_path / "missing.pkl", other):
        proc = subprocess.run(
            [sys.executable, "-m", "lab.modality_record", "--data", str(data),
             "--checkpoint", str(path)], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert load_checkpoint(path).modality_record is None  # left untouched


def test_malformed_record_is_refused(tmp_path):
    torch.manual_seed(0)
    model = MSRG(MSRGConfig(d_model=16, window=3, ulf_hidden=8)).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", {"modalities": {"trained": ["smell"]}})
    with pytest.raises(CheckpointError, match="unknown modalities") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_shipped_checkpoint_learned_words_and_voice_not_faces():
    loaded = load_checkpoint(SHIPPED)
    record = loaded.modality_record
    assert record is not None, "stamp it: python -m lab.modality_record --data SET --checkpoint"
    assert loaded.trained_modalities == ("text", "audio")
    assert record["presence"]["visual"] == 0.0
    assert record["presence"]["text"] >= 0.05 and record["presence"]["audio"] >= 0.05
    assert loaded.modality_usage["visual"].startswith("not used: checkpoint trained without faces")


def test_evaluation_masks_what_the_checkpoint_did_not_learn(tmp_path):
    """lab.evaluate predicts as live use does: faces in the data do not reach a checkpoint
    trained without them."""
    from dataclasses import replace

    from lab.evaluate import predict_checkpoint
    from lab.modality_record import stamp
    from lab.train import predict
    from msrg.data import load_mmsa

    path = _unrecorded_checkpoint(tmp_path / "m.pt")
    stamp(path, [_masked_set(tmp_path / "no_faces.pkl", visual_share=0.0)])
    with_faces = load_mmsa(_masked_set(tmp_path / "faces.pkl", visual_share=1.0), ("valid",))
    data = with_faces["valid"]
    loaded = load_checkpoint(path)
    got = predict_checkpoint(loaded, data)["final"]
    faceless = replace(data, mask=data.mask * np.array([1, 1, 0], np.float32))
    assert np.allclose(got, predict(loaded.model, faceless)["final"], atol=1e-6)
    assert not np.allclose(got, predict(loaded.model, data)["final"], atol=1e-4)
