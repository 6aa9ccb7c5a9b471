"""The time-step loss terms on hand-made tensors, against values worked out by hand."""

import pytest
import torch

from msrg.step_loss import (
    mean_step_loss,
    progressive_loss,
    progressive_weights,
    smoothness_loss,
    speech_steps,
)

# Two utterances of 5 steps. Row 0: speech at steps 1, 2, 4 (step 3 is a pause, step 0 silence).
INTENSITY = torch.tensor([[5.0, 1.0, 2.0, 9.0, 3.0], [0.0, 0.0, 2.0, 2.0, -1.0]])
SPEECH = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0, 1.0]])
LABELS = torch.tensor([2.0, 1.0])


def test_speech_steps_are_words_or_voice_on_valid_steps():
    mask = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]], dtype=torch.float32)
    valid = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert speech_steps(mask, valid).tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_progressive_weights_grow_with_what_was_heard():
    w = progressive_weights(SPEECH[:1], power=1.0)  # t / T_u = 1/3, 2/3, 1 -> / 2
    assert w[0].tolist() == pytest.approx([0, 1 / 6, 1 / 3, 0, 1 / 2])
    w2 = progressive_weights(SPEECH[:1], power=2.0)  # 1/9, 4/9, 1 -> / (14/9)
    assert w2[0].tolist() == pytest.approx([0, 1 / 14, 4 / 14, 0, 9 / 14])
    assert progressive_weights(torch.zeros(1, 3), 1.0).sum() == 0  # no speech, no weight


def test_progressive_loss_by_hand():
    # row 0: |1-2|/6 + |2-2|/3 + |3-2|/2 = 2/3
    # row 1: weights 1/10, 2/10, 3/10, 4/10 on 0, 2, 2, -1 against 1: (1 + 2 + 3 + 8) / 10 = 1.4
    got = progressive_loss(INTENSITY, SPEECH, LABELS, power=1.0)
    assert got.item() == pytest.approx((2 / 3 + 1.4) / 2)
    # squared: row 0 1/6 + 1/2 = 2/3; row 1 (1 + 2 + 3 + 16) / 10 = 2.2
    got = progressive_loss(INTENSITY, SPEECH, LABELS, power=1.0, kind="mse")
    assert got.item() == pytest.approx((2 / 3 + 2.2) / 2)
    # an utterance without speech does not count
    speech = SPEECH.clone()
    speech[1] = 0
    assert progressive_loss(INTENSITY, speech, LABELS).item() == pytest.approx(2 / 3)


def test_smoothness_skips_pauses_and_averages_utterances():
    # row 0: speech values 1, 2, 3 -> changes 1, 1 -> 1; row 1: 0, 2, 2, -1 -> 2, 0, 3 -> 5/3
    assert smoothness_loss(INTENSITY, SPEECH).item() == pytest.approx((1 + 5 / 3) / 2)
    one_step = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]] * 2)
    assert smoothness_loss(INTENSITY, one_step).item() == 0.0


def test_mean_loss_is_the_original_auxiliary_term():
    valid = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0], [1.0] * 5])
    # row 0: mean(5, 1, 2, 9) = 4.25 -> 2.25; row 1: mean 0.6 -> 0.4
    assert mean_step_loss(INTENSITY, valid, LABELS).item() == pytest.approx((2.25 + 0.4) / 2)


def test_gradients_flow():
    x = INTENSITY.clone().requires_grad_(True)
    (progressive_loss(x, SPEECH, LABELS) + smoothness_loss(x, SPEECH)).backward()
    assert x.grad[0, 0] == 0 and x.grad[0, 3] == 0  # silence and pauses get no gradient
    assert x.grad[0, 4] != 0
