"""Curve metrics on hand-made curves, against values worked out by hand."""

import math

import numpy as np
import pytest

from msrg.curve import curve_metrics, format_curve_table, speech_curves


def test_speech_curves_keep_speech_steps_in_order():
    got = speech_curves(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([[1, 0, 1], [0, 0, 0]]))
    assert got[0].tolist() == [1.0, 3.0] and len(got[1]) == 0


def test_curve_metrics_by_hand():
    curves = [np.array([1.0, 2.95, 2.0]), np.array([-1.0, -3.0]), np.array([]), np.array([0.2])]
    finals = np.array([1.5, 0.8, 0.0, -0.9])
    labels = np.array([2.0, -1.0, 1.0, -0.5])
    m = curve_metrics(curves, finals, labels)
    assert m["utterances"] == 3 and m["without_speech"] == 1 and m["speech_steps"] == 6
    assert m["saturation"] == pytest.approx(2 / 6)  # 2.95 and -3.0
    assert m["jitter"] == pytest.approx((1.95 + 0.95 + 2.0) / 3)
    # last steps 2.0, -3.0, 0.2 against finals 1.5, 0.8, -0.9 (all decided): one agrees
    assert m["decided"] == 3 and m["sign_agreement"] == pytest.approx(1 / 3)
    # against labels 2, -1, -0.5: errors 0, 2, 0.7; signs agree for the first two
    assert m["last_mae"] == pytest.approx(0.9)
    assert m["last_acc2_non0"] == pytest.approx(2 / 3)
    assert m["last_corr"] == pytest.approx(7.0333 / math.sqrt(12.8267 * 5.1667), abs=1e-3)


def test_undecided_finals_do_not_count_and_labels_are_optional():
    m = curve_metrics([np.array([1.0, 1.5]), np.array([-2.0])], np.array([0.4, -1.0]))
    assert m["decided"] == 1 and m["sign_agreement"] == 1.0
    assert m["jitter"] == pytest.approx(0.5) and m["saturation"] == 0.0
    assert "last_mae" not in m
    assert "sign agree" in format_curve_table({"x": m})


def test_mismatched_lengths_fail_clearly():
    with pytest.raises(ValueError, match="one final"):
        curve_metrics([np.array([1.0])], np.array([1.0, 2.0]))


def test_demo_curve_from_published_messages():
    """The pipeline benchmark's curve: final step versions with words or voice inside each
    utterance, against its final_intensity."""
    from benchmarks.pipeline import demo_curve
    from contract import messages as m

    def step(seq, y, speech):
        return m.StepMessage(
            session="s", seq=seq, t_emit=0.0, t_start=seq / 10, t_end=(seq + 1) / 10, intensity=y,
            modality_weights=m.ModalityWeights(0.5, 0.5, 0.0),
            present=m.Presence(speech, speech, False), revision=0, final=True, latency_ms=1.0,
        )  # fmt: skip

    steps = [step(0, 0.0, False), step(1, 1.0, True), step(2, 2.95, True), step(3, 2.95, False),
             step(4, 2.0, True), step(9, -1.0, True)]  # fmt: skip
    utt = m.UtteranceMessage(
        session="s", seq=0, t_emit=0.0, utterance_id=0, t_start=0.1, t_end=0.5, transcript="x",
        utterance_intensity=1.0, timestep_intensity=1.0, final_intensity=-1.5, latency_ms=1.0,
    )  # fmt: skip
    got = demo_curve([*steps, utt])
    # speech steps inside 0.1-0.5 s: 1.0, 2.95, 2.0 (step 3 has no speech, step 9 is outside)
    assert got["speech_steps"] == 3 and got["saturation"] == pytest.approx(1 / 3, abs=1e-4)
    assert got["jitter"] == pytest.approx(1.45) and got["sign_agreement"] == 0.0
