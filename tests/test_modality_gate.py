"""Live use masks what the model never learned (engines/modality_gate.py, wired in
realtime.session.load_live_engine): with the shipped checkpoint (trained without faces) a real
clip's step intensities are the same, to 1e-6, whether its frames show a face or not, on every
path a step takes (eager, ONNX, the shared batched engine, the utterance/SIM path, a whole
Session); `present` still says what the camera saw; the status says which modalities the model
uses. A checkpoint trained (tiny synthetic run) on all three keeps the face and its weight."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from contract import messages
from engines import load_engine
from engines.batching import SharedEngine
from msrg.checkpoint import load_checkpoint, save_checkpoint
from msrg.data import make_synthetic_mmsa
from realtime.pipeline import PipelineOptions
from realtime.publisher import PublisherOptions
from realtime.replay import extract_source
from realtime.session import (
    DEFAULT_CHECKPOINT,
    InputOptions,
    Session,
    SessionOptions,
    load_live_engine,
)
from realtime.sources.demo import DemoSentence, make_clip
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.stepper import StepRunner, held
from realtime.types import StepBatch

TOL = 1e-6
SENTENCES = (
    DemoSentence("I really love this, it is wonderful.", "positive"),
    DemoSentence("This is terrible and I hate it.", "negative"),
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blank_copy(clip: Path, out: Path) -> Path:
    """The clip's audio stream copied bit for bit under a grey, faceless video."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(clip)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = float(probe.stdout.strip())
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip),
         "-f", "lavfi", "-i", f"color=c=gray:s=640x480:r=25:d={seconds:.3f}",
         "-map", "1:v:0", "-map", "0:a:0", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "copy", "-t", f"{seconds:.3f}", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from realtime.extractors import Extractors

    tmp = tmp_path_factory.mktemp("gate")
    face_clip = tmp / "face.mp4"
    make_clip(SENTENCES, face_clip)
    blank_clip = _blank_copy(face_clip, tmp / "blank.mp4")
    loaded = load_checkpoint(DEFAULT_CHECKPOINT)
    extractors = Extractors.load(text_adapter=loaded.text_adapter)
    steps = {
        name: extract_source(MediaFileSource(MediaFileOptions(path)), extractors).steps
        for name, path in (("face", face_clip), ("blank", blank_clip))
    }
    return {"tmp": tmp, "face_clip": face_clip, "steps": steps, "extractors": extractors,
            "loaded": loaded}  # fmt: skip


def _run(engine, steps) -> tuple[np.ndarray, np.ndarray, float]:  # noqa: ANN001
    """Step intensities (T,), AMLP weights (T, 3) and the SIM result of the whole clip."""
    runner = StepRunner(engine)
    outcomes = runner.push(StepBatch(new=tuple(steps), final=tuple(s.seq for s in steps)))
    final = float(runner.utterance(outcomes).final_intensity[0])
    return (np.array([o.intensity for o in outcomes]),
            np.array([o.modality_weights for o in outcomes]), final)  # fmt: skip


def _switched(_message: str) -> None:
    raise AssertionError("no engine should fail here")


def test_the_clips_differ_in_faces_only(setup: dict) -> None:
    face, blank = setup["steps"]["face"], setup["steps"]["blank"]
    assert len(face) == len(blank) > 50
    assert np.mean([s.present[2] for s in face]) > 0.5  # the carphone clip shows a face
    assert not any(s.present[2] for s in blank)
    assert [s.present[:2] for s in face] == [s.present[:2] for s in blank]
    assert all(np.array_equal(a.audio, b.audio) and np.array_equal(a.text, b.text)
               for a, b in zip(face, blank))  # fmt: skip


def test_shipped_checkpoint_uses_words_and_voice_only(setup: dict) -> None:
    usage = setup["loaded"].modality_usage
    assert usage["text"] == usage["audio"] == "used"
    assert usage["visual"].startswith("not used: checkpoint trained without faces")


@pytest.mark.parametrize("kind", ["eager", "onnx", pytest.param("tensorrt", marks=pytest.mark.gpu)])
def test_steps_and_utterance_do_not_depend_on_the_face(setup: dict, kind: str) -> None:
    if kind == "tensorrt":
        from engines import tensorrt

        if tensorrt.missing():
            pytest.skip(f"TensorRT unavailable: {'; '.join(tensorrt.missing())}")
    gate, _ = load_live_engine(kind, DEFAULT_CHECKPOINT, _switched)
    assert gate.model_modalities == setup["loaded"].modality_usage
    face_i, face_w, face_final = _run(gate, setup["steps"]["face"])
    blank_i, blank_w, blank_final = _run(gate, setup["steps"]["blank"])
    assert np.max(np.abs(face_i - blank_i)) <= TOL
    assert abs(face_final - blank_final) <= TOL
    assert np.all(face_w[:, 2] == 0.0)
    # Weights are over what the model uses: they sum to 1 where words or voice are present,
    # and are all 0 where neither is (silence with a face is, to this model, nothing).
    used = np.array([s.present[0] or s.present[1] for s in setup["steps"]["face"]])
    assert np.allclose(face_w.sum(axis=1), used.astype(float), atol=1e-5) and used.any()
    # Without the gate the face moved the curve: the assertions above can fail.
    raw_i, raw_w, _ = _run(load_engine(kind, DEFAULT_CHECKPOINT), setup["steps"]["face"])
    assert np.max(np.abs(raw_i - blank_i)) > 1e-3 and raw_w[:, 2].max() > 0.05


def test_shared_batched_engine_masks_too(setup: dict) -> None:
    gate, _ = load_live_engine("eager", DEFAULT_CHECKPOINT, _switched)
    shared = SharedEngine(gate, max_wait_s=0.005)
    results: dict[str, tuple] = {}

    def work(name: str) -> None:
        results[name] = _run(shared.handle(name), setup["steps"][name])

    try:
        assert shared.handle("status").model_modalities == gate.model_modalities
        threads = [threading.Thread(target=work, args=(n,)) for n in ("face", "blank")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stats = shared.stats()
    finally:
        shared.shutdown()
    assert set(results) == {"face", "blank"}
    assert stats["engine_calls"] < stats["requests"]  # the two streams did share calls
    assert np.max(np.abs(results["face"][0] - results["blank"][0])) <= 1e-5  # batch-2 rounding
    assert np.all(results["face"][1][:, 2] == 0.0)


def test_session_publishes_face_presence_but_not_its_weight(setup: dict, monkeypatch) -> None:
    """A whole Session on the face clip: steps say a face was seen, give it no weight, and equal
    the engine run over the same final features with the face removed; the status says why."""
    finals: list = []
    push = StepRunner.push

    def recording_push(self: StepRunner, batch) -> list:  # noqa: ANN001
        out = push(self, batch)
        finals.extend(o for o in out if o.final)
        return out

    monkeypatch.setattr(StepRunner, "push", recording_push)
    session = Session(SessionOptions(
        inputs=InputOptions(video=setup["face_clip"]), engine="eager",
        publish=PublisherOptions(endpoint="tcp://127.0.0.1:*"), pipeline=PipelineOptions(),
    ), extractors=setup["extractors"])  # fmt: skip
    got: list[messages.Message] = []
    session.pipeline.on_message = got.append
    session.start()
    try:
        assert session.pipeline.wait(240)
    finally:
        session.stop()
    validator = jsonschema.Draft202012Validator(messages.load_schema())
    for msg in got:
        validator.validate(json.loads(json.dumps(msg.to_dict())))
    steps = [m for m in got if isinstance(m, messages.StepMessage)]
    statuses = [m for m in got if isinstance(m, messages.StatusMessage)]
    assert statuses and all(s.model_modalities is not None for s in statuses)
    assert statuses[-1].model_modalities.visual.startswith("not used: checkpoint trained without")
    assert statuses[-1].model_modalities.text == "used"
    seen = [m for m in steps if m.present.visual]
    assert len(seen) > 0.5 * len({m.seq for m in steps})  # present: what the camera saw
    assert all(m.modality_weights.visual == 0.0 for m in steps)
    published = {m.seq: m.intensity for m in steps if m.final}
    monkeypatch.undo()  # the reference run below has a step runner of its own
    session_finals = sorted(finals, key=lambda o: o.features.seq)
    assert [o.features.seq for o in session_finals] == sorted(published)
    faceless = [_without_face(o.features) for o in session_finals]
    intensities, _, _ = _run(load_engine("eager", DEFAULT_CHECKPOINT), faceless)
    shown, previous = [], 0.0  # published steps hold the last speech step's value in silence
    for features, intensity in zip(faceless, intensities):
        previous = held(features, float(intensity), previous)
        shown.append(previous)
    expected = np.array([published[o.features.seq] for o in session_finals])
    assert np.max(np.abs(np.array(shown) - expected)) <= TOL


def _without_face(f):  # noqa: ANN001, ANN202
    from dataclasses import replace

    return replace(f, visual=np.zeros_like(f.visual), present=(f.present[0], f.present[1], False))


def test_checkpoint_trained_on_all_three_keeps_the_face(setup: dict) -> None:
    tmp = setup["tmp"]
    shipped = setup["loaded"]  # the clips' steps carry its encoder's text width
    dims = (shipped.config.text_dim, 25, 12)
    data = make_synthetic_mmsa(tmp / "live.pkl", dims=dims, steps=12, sizes=(48, 8, 8))
    ckpt = tmp / "all.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "lab.train", "--data", str(data), "--preset", "data",
         "--epochs", "1", "--d-model", "32", "--out", str(ckpt)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = load_checkpoint(ckpt)  # named with the shipped encoder, as the steps were embedded
    save_checkpoint(trained.model, ckpt, trained.meta, text_adapter=shipped.text_adapter)
    gate, _ = load_live_engine("eager", ckpt, _switched)
    assert set(gate.model_modalities.values()) == {"used"}
    face_i, face_w, _ = _run(gate, setup["steps"]["face"])
    blank_i, _, _ = _run(gate, setup["steps"]["blank"])
    assert np.max(np.abs(face_i - blank_i)) > 1e-4
    with_face = np.array([s.present[2] for s in setup["steps"]["face"]])
    assert face_w[with_face, 2].min() > 0.0


def test_dashboard_tells_not_used_from_not_seen(qtbot) -> None:
    """The pill of a modality the model does not use says so, whatever the camera saw; a used
    modality that is absent says "no face"."""
    from dataclasses import replace

    from ui.dashboard import DashboardWindow
    from ui.history import History
    from ui.synthetic import SyntheticOptions, synthetic_session

    msgs = [msg for _, msg in synthetic_session(SyntheticOptions(duration_s=3.0))]
    status = next(x for x in msgs if isinstance(x, messages.StatusMessage))
    step = next(x for x in msgs if isinstance(x, messages.StepMessage))
    window = DashboardWindow(History())
    qtbot.addWidget(window)
    pill = window.pills.pills["visual"]
    why = "not used: checkpoint trained without faces (present in 0.0% of training steps)"
    usage = messages.ModelModalities(text="used", audio="used", visual=why)
    seen = replace(step, present=messages.Presence(True, True, True))
    window.on_messages([replace(status, model_modalities=usage), seen])
    window.refresh()
    assert pill.text() == "face unused"
    assert window.pills.note.text().startswith("face: not used by this model (checkpoint trained")
    assert not window.pills.note.isHidden()
    assert "seen in the newest step" in pill.toolTip() and "trained without faces" in pill.toolTip()
    unseen = replace(step, seq=step.seq + 1, present=messages.Presence(True, True, False))
    window.on_messages([replace(status, seq=status.seq + 1, model_modalities=None), unseen])
    window.refresh()
    assert pill.text() == "no face" and window.pills.note.isHidden()


def test_status_field_is_additive_and_validated() -> None:
    """model_modalities round-trips and validates against the schema; a status without it (an
    older publisher or recording) still decodes; a malformed value fails in both checks."""
    from ui.synthetic import SyntheticOptions, synthetic_session

    status = next(x for _, x in synthetic_session(SyntheticOptions(duration_s=2.0))
                  if isinstance(x, messages.StatusMessage))  # fmt: skip
    validator = jsonschema.Draft202012Validator(messages.load_schema())
    usage = {"text": "used", "audio": "used", "visual": "not used: trained without faces"}
    payload = {**status.to_dict(), "model_modalities": usage}
    validator.validate(payload)
    decoded = messages.decode_message(messages.encode(messages.TOPIC_STATUS, payload))
    assert decoded.model_modalities == messages.ModelModalities(**usage)
    old = status.to_dict()
    del old["model_modalities"]
    validator.validate(old)
    assert messages.decode_message(messages.encode(messages.TOPIC_STATUS, old)).model_modalities is None
    for bad in ("maybe", "not used: ", "", 3):
        wrong = {**payload, "model_modalities": {**usage, "visual": bad}}
        assert not validator.is_valid(wrong)
        with pytest.raises(messages.MessageError):
            messages.StatusMessage.from_dict(wrong)
