"""Dataset building by replay (TTS path) and evaluation on a tiny label file."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from lab.dataset_builder import BuildOptions, build, read_labels
from lab.evaluate import fit_ridge
from lab.evaluate import main as evaluate_main
from lab.train import predict
from msrg.checkpoint import load_checkpoint, save_checkpoint
from msrg.config import LIVE_AUDIO_DIM, LIVE_TEXT_DIM, LIVE_VISUAL_DIM
from msrg.data import load_mmsa
from msrg.model import MSRG

LABELS = """id,text,label,mode
vidA_1,i really loved this movie it was wonderful,2.6,valid
vidA_2,this was a terrible boring waste of time,-2.2,valid
vidB_1,the film is two hours long,0.0,valid
vidB_2,,1.0,valid
vidB_3,out of range,7.5,valid
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    labels = tmp / "labels.csv"
    labels.write_text(LABELS)
    segments, problems = read_labels(labels)
    out = tmp / "set.pkl"
    summary = build(
        segments,
        BuildOptions(source="tts"),
        out,
        workers=1,
        cache_dir=tmp / "cache",
        progress=False,
    )
    return {
        "tmp": tmp,
        "labels": labels,
        "segments": segments,
        "problems": problems,
        "summary": summary,
        "out": out,
    }


def test_bad_rows_are_reported_not_silently_dropped(built):
    assert len(built["problems"]) == 1 and "outside [-3, 3]" in built["problems"][0]
    assert built["summary"]["problems"] == {"vidB_2": "empty transcript (nothing to speak)"}


def test_builder_produces_the_documented_arrays(built):
    with open(built["out"], "rb") as f:
        raw = pickle.load(f)
    split = raw["valid"]
    n, steps = split["valid"].shape
    assert n == 3 and steps >= 10
    assert split["text"].shape == (n, steps, LIVE_TEXT_DIM)
    assert split["audio"].shape == (n, steps, LIVE_AUDIO_DIM)
    assert split["vision"].shape == (n, steps, LIVE_VISUAL_DIM)
    assert split["mask"].shape == (n, steps, 3)
    assert split["id"] == ["vidA_1", "vidA_2", "vidB_1"]
    assert np.allclose(split["regression_labels"], [2.6, -2.2, 0.0])
    assert (split["mask"][:, :, 2] == 0).all()  # TTS: no video
    for i in range(n):
        real = split["valid"][i] > 0
        assert split["mask"][i, real, 0].any() and split["mask"][i, real, 1].any()  # words, voice
        assert (split["mask"][i, ~real] == 0).all()  # padding carries nothing
    assert "loved" in split["asr_text"][0].lower()
    sets = load_mmsa(built["out"], ("valid",))
    assert sets["valid"].dims == {
        "text": LIVE_TEXT_DIM,
        "audio": LIVE_AUDIO_DIM,
        "visual": LIVE_VISUAL_DIM,
    }


def test_a_second_build_reuses_the_cache(built):
    again = build(built["segments"], BuildOptions(source="tts"), built["tmp"] / "again.pkl", workers=1,
                  cache_dir=built["tmp"] / "cache", progress=False)  # fmt: skip
    with open(built["out"], "rb") as a, open(built["tmp"] / "again.pkl", "rb") as b:
        assert np.array_equal(pickle.load(a)["valid"]["text"], pickle.load(b)["valid"]["text"])
    assert again["counts"] == {"valid": 3}


def _one_by_one(model: MSRG, data) -> np.ndarray:
    """The final intensity of each utterance computed on its own: a batch of one, cut to its
    real steps, straight through the model; not through lab.train.predict (batching, sorting
    by length, padding), which the evaluation under test uses."""
    out = []
    with torch.no_grad():
        for i in range(len(data.labels)):
            n = int(data.valid[i].sum())
            assert n > 0 and data.valid[i, :n].all()  # real steps come first
            x = [torch.from_numpy(np.ascontiguousarray(a[i : i + 1, :n]))
                 for a in (data.text, data.audio, data.visual, data.mask)]  # fmt: skip
            seq = model(*x)
            utt = model.utterance(*x, torch.ones(1, n, dtype=torch.bool), seq.intensity,
                                  seq.salience)  # fmt: skip
            out.append(float(utt.final_intensity[0]))
    return np.array(out)


def test_evaluation_matches_an_independent_computation(built, capsys):
    torch.manual_seed(1)
    ckpt = save_checkpoint(MSRG().eval(), built["tmp"] / "m.pt")
    out = built["tmp"] / "metrics.json"
    code = evaluate_main(["--checkpoint", str(ckpt), "--labels", str(built["labels"]), "--split", "valid",
                          "--tts", "--json", str(out), "--cache", str(built["tmp"] / "cache"), "--workers", "1"])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    data = load_mmsa(built["out"], ("valid",))["valid"]
    pred = _one_by_one(load_checkpoint(ckpt).model.eval(), data)
    preds = predict(load_checkpoint(ckpt).model, data)  # each segment's speech-step curve
    labels = np.array([2.6, -2.2, 0.0])
    # the curve: every spoken segment has speech steps; jitter over their consecutive changes
    curve = report["curve"]
    assert curve["utterances"] == 3 and curve["without_speech"] == 0
    changes = np.concatenate([np.abs(np.diff(c)) for c in preds["curves"]])
    assert curve["jitter"] == pytest.approx(changes.mean(), abs=1e-6)
    last = np.array([c[-1] for c in preds["curves"]])
    assert curve["last_mae"] == pytest.approx(np.mean(np.abs(last - labels)), abs=1e-6)
    got = report["metrics"]["MSRG (SIM final)"]
    assert got["mae"] == pytest.approx(np.mean(np.abs(pred - labels)), abs=1e-5)
    # has-0: positive iff >= 0; the third label (0.0) counts as positive.
    assert got["acc2_has0"] == pytest.approx(np.mean((pred >= 0) == (labels >= 0)))
    # non-0 drops the zero label: two samples left.
    assert got["acc2_non0"] == pytest.approx(np.mean((pred[:2] > 0) == (labels[:2] > 0)))
    assert report["n"] == 3
    assert np.allclose(pred, predict(load_checkpoint(ckpt).model, data)["final"], atol=1e-5)


def test_ridge_recovers_a_linear_function():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([0.5, -0.3, 0.2, 0.0, 0.1]) + 0.2
    predict_fn, alpha = fit_ridge(x, y)
    assert np.abs(predict_fn(x) - y).max() < 0.05
    assert alpha == min(alpha for alpha in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0))
