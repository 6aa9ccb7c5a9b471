"""MMSA metrics on small hand-computed cases, including labels of exactly 0 and 0.5."""

import math

import numpy as np
import pytest

from msrg.metrics import regression_metrics


def test_hand_computed_case_with_zero_and_half_labels():
    truth = np.array([0.0, 0.5, -1.5, 2.6, -0.4])
    pred = np.array([0.3, -0.2, -1.4, 3.4, 0.0])
    m = regression_metrics(pred, truth)
    # non-0: drop the 0 label -> truth > 0: [T, F, T, F], pred > 0: [F, F, T, F] -> 3/4
    assert m["acc2_non0"] == pytest.approx(0.75)
    # has-0: truth >= 0: [T, T, F, T, F]; pred >= 0: [T, F, F, T, T] -> 3/5
    assert m["acc2_has0"] == pytest.approx(0.6)
    # Acc-7: clip to [-3, 3] then round half to even.
    # truth -> [0, 0 (0.5 rounds to 0), -2, 3, -0]; pred -> [0, -0, -1, 3, 0] -> 4/5
    assert m["acc7"] == pytest.approx(0.8)
    # Acc-5: clip to [-2, 2]: truth [0, 0, -2, 2, 0]; pred [0, 0, -1, 2, 0] -> 4/5
    assert m["acc5"] == pytest.approx(0.8)
    assert m["mae"] == pytest.approx(np.mean([0.3, 0.7, 0.1, 0.8, 0.4]))
    assert m["corr"] == pytest.approx(np.corrcoef(pred, truth)[0, 1])


def test_weighted_f1_by_hand():
    # has-0 classes: truth [T, T, F, F], pred [T, F, F, F]
    truth = np.array([1.0, 2.0, -1.0, -2.0])
    pred = np.array([1.0, -1.0, -1.0, -1.0])
    m = regression_metrics(pred, truth)
    # class T: tp 1, fp 0, fn 1 -> F1 2/3; class F: tp 2, fp 1, fn 0 -> F1 4/5; weights 1/2 each
    assert m["f1_has0"] == pytest.approx(0.5 * (2 / 3) + 0.5 * 0.8)
    assert m["f1_non0"] == pytest.approx(m["f1_has0"])


def test_zero_prediction_counts_as_positive_only_in_has0():
    truth = np.array([1.0, -1.0])
    pred = np.array([0.0, 0.0])
    m = regression_metrics(pred, truth)
    assert m["acc2_has0"] == pytest.approx(0.5)  # 0 >= 0 is positive: right for the first
    assert m["acc2_non0"] == pytest.approx(0.5)  # 0 > 0 is negative: right for the second
    assert m["corr"] == 0.0  # constant predictions


def test_all_zero_labels_have_no_non0_accuracy():
    m = regression_metrics(np.array([0.1, -0.1]), np.array([0.0, 0.0]))
    assert math.isnan(m["acc2_non0"])
    assert m["acc2_has0"] == pytest.approx(0.5)


def test_perfect_predictions():
    truth = np.linspace(-3, 3, 13)
    m = regression_metrics(truth.copy(), truth)
    assert m["mae"] == 0.0 and m["corr"] == pytest.approx(1.0)
    assert m["acc7"] == 1.0 and m["acc5"] == 1.0 and m["acc2_has0"] == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        regression_metrics(np.zeros(3), np.zeros(4))
