"""MSRG: streaming step equals the sequence forward; AMLP coefficients; determinism."""

import pytest
import torch

from msrg.config import MSRGConfig
from msrg.model import MSRG, STATE_NAMES


def _inputs(config: MSRGConfig, batch: int, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, steps, config.text_dim, generator=g)
    audio = torch.randn(batch, steps, config.audio_dim, generator=g)
    visual = torch.randn(batch, steps, config.visual_dim, generator=g)
    mask = (torch.rand(batch, steps, 3, generator=g) > 0.3).float()
    return text, audio, visual, mask


@pytest.fixture(scope="module")
def model() -> MSRG:
    torch.manual_seed(0)
    return MSRG(MSRGConfig()).eval()


def test_step_equals_forward_at_every_step(model):
    steps = 150
    text, audio, visual, mask = _inputs(model.config, 2, steps)
    with torch.no_grad():
        seq = model(text, audio, visual, mask)
        state = model.initial_state(2)
        stepped, weights, salience = [], [], []
        for t in range(steps):
            out, state = model.step(state, text[:, t], audio[:, t], visual[:, t], mask[:, t])
            stepped.append(out.intensity)
            weights.append(out.modality_weights)
            salience.append(out.salience)
    assert (torch.stack(stepped, 1) - seq.intensity).abs().max() < 1e-5
    assert (torch.stack(weights, 1) - seq.modality_weights).abs().max() < 1e-5
    assert (torch.stack(salience, 1) - seq.salience).abs().max() < 1e-5
    for name, a, b in zip(STATE_NAMES, state, seq.state):
        assert (a - b).abs().max() < 1e-5, name
    # The intensities actually vary: an all-constant output would pass the comparison trivially.
    assert seq.intensity.std() > 1e-3


def test_forward_resumes_from_a_state(model):
    text, audio, visual, mask = _inputs(model.config, 1, 60, seed=1)
    with torch.no_grad():
        whole = model(text, audio, visual, mask)
        head = model(text[:, :25], audio[:, :25], visual[:, :25], mask[:, :25])
        tail = model(text[:, 25:], audio[:, 25:], visual[:, 25:], mask[:, 25:], state=head.state)
    joined = torch.cat([head.intensity, tail.intensity], dim=1)
    assert (joined - whole.intensity).abs().max() < 1e-5


def test_state_has_fixed_shapes(model):
    state = model.initial_state(4)
    assert len(state) == len(STATE_NAMES)
    text, audio, visual, mask = (x[:, 0] for x in _inputs(model.config, 4, 1))
    with torch.no_grad():
        _, new_state = model.step(state, text, audio, visual, mask)
    assert [s.shape for s in new_state] == [s.shape for s in state]
    assert all(s.shape[0] == 4 for s in state)


def test_amlp_coefficients_sum_to_one_and_masked_modality_gets_zero(model):
    text, audio, visual, mask = _inputs(model.config, 3, 40, seed=2)
    mask[:, :, 0] = 1.0
    mask[:, ::3, 2] = 0.0  # visual absent on every third step
    with torch.no_grad():
        alpha = model(text, audio, visual, mask).modality_weights  # (B, T, 3)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 40), atol=1e-5)
    assert (alpha[mask == 0] == 0).all()
    assert (alpha[mask == 1] > 0).all()
    # Coefficients are per sample and step: the batch does not influence a sample's weights.
    with torch.no_grad():
        alone = model(text[:1], audio[:1], visual[:1], mask[:1]).modality_weights
    assert torch.allclose(alone, alpha[:1], atol=1e-6)


def test_all_modalities_absent_gives_zero_weights(model):
    text, audio, visual, _ = _inputs(model.config, 1, 5)
    with torch.no_grad():
        alpha = model(text, audio, visual, torch.zeros(1, 5, 3)).modality_weights
    assert (alpha == 0).all()


def test_same_input_same_output(model):
    text, audio, visual, mask = _inputs(model.config, 2, 30, seed=3)
    with torch.no_grad():
        a = model(text, audio, visual, mask).intensity
        b = model(text, audio, visual, mask).intensity
    assert torch.equal(a, b)
    torch.manual_seed(123)
    other = MSRG(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        c = other(text, audio, visual, mask).intensity
    assert torch.equal(a, c)


def test_intensity_bounded(model):
    text, audio, visual, mask = _inputs(model.config, 2, 20, seed=4)
    with torch.no_grad():
        out = model(text * 100, audio * 100, visual * 100, mask)
    assert out.intensity.abs().max() <= 3.0


def test_utterance_sim_combines_ulf_and_steps(model):
    text, audio, visual, mask = _inputs(model.config, 2, 30, seed=5)
    valid = torch.ones(2, 30)
    valid[1, 20:] = 0  # second utterance is shorter (padding)
    with torch.no_grad():
        seq = model(text, audio, visual, mask)
        utt = model.utterance(text, audio, visual, mask, valid, seq.intensity, seq.salience)
        # Padding must not matter: the short utterance alone gives the same result.
        alone = model.utterance(
            text[1:, :20],
            audio[1:, :20],
            visual[1:, :20],
            mask[1:, :20],
            valid[1:, :20],
            seq.intensity[1:, :20],
            seq.salience[1:, :20],
        )
    assert torch.allclose(utt.final_intensity[1], alone.final_intensity[0], atol=1e-5)
    lo = torch.minimum(utt.utterance_intensity, utt.timestep_intensity)
    hi = torch.maximum(utt.utterance_intensity, utt.timestep_intensity)
    assert ((utt.final_intensity >= lo - 1e-6) & (utt.final_intensity <= hi + 1e-6)).all()
    # The time-step summary is a weighted mean of the valid step intensities.
    assert utt.timestep_intensity[1] <= seq.intensity[1, :20].max() + 1e-6
    assert utt.timestep_intensity[1] >= seq.intensity[1, :20].min() - 1e-6


def test_utterance_without_steps_uses_ulf_only(model):
    text, audio, visual, mask = _inputs(model.config, 1, 4)
    with torch.no_grad():
        utt = model.utterance(
            text, audio, visual, mask, torch.zeros(1, 4), torch.ones(1, 4), torch.zeros(1, 4)
        )
    assert torch.allclose(utt.final_intensity, utt.utterance_intensity)
