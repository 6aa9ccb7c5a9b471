"""MSRG in streaming form: FE -> EIA (AMLP + JCAF) -> TLF (GRU + RGN) -> time-step intensity,
and at an utterance's end ULF + SIM -> utterance and final intensities.

Two faces that compute the same function:
  - `forward` over whole sequences (training, whole-clip evaluation), optionally from a state;
  - `step(state, ...)` for one time step with the recurrent state as an explicit flat tuple of
    fixed-shape tensors, so it exports to ONNX and TensorRT.
The recurrent cells of `step` are written as plain tensor algebra over the same parameters that
the fused `nn.GRU` of `forward` trains.

State layout (every tensor batch-first):
  0-2  fe_h_text, fe_h_audio, fe_h_visual   (B, fe_layers, d)   FE GRU hidden states
  3-5  win_text, win_audio, win_visual      (B, W, d)           FE outputs of the last W steps
  6    win_g                                (B, W, d)           AMLP outputs of the last W steps
  7    tlf_h                                (B, 2d)             TLF GRU hidden state
  8    rgn_s                                (B, d)              RGN state
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from contract.names import INTENSITY_RANGE, MODALITIES, STATE_NAMES  # noqa: F401  (the layout initial_state makes)
from msrg.config import MSRGConfig
from msrg.fusion import AMLP, JCAF, causal_windows
from msrg.rgn import RGN

State = tuple[torch.Tensor, ...]


@dataclass
class StepOutput:
    intensity: torch.Tensor  # (B,) in [-3, 3]
    modality_weights: torch.Tensor  # (B, 3) AMLP alpha: text, audio, visual
    salience: torch.Tensor  # (B,) SIM attention logit of this step


@dataclass
class SequenceOutput:
    intensity: torch.Tensor  # (B, T)
    modality_weights: torch.Tensor  # (B, T, 3)
    salience: torch.Tensor  # (B, T)
    state: State  # state after the last step


@dataclass
class UtteranceOutput:
    utterance_intensity: torch.Tensor  # (B,) ULF
    timestep_intensity: torch.Tensor  # (B,) SIM's attention summary of the step intensities
    final_intensity: torch.Tensor  # (B,) SIM result
    gate: torch.Tensor  # (B,) SIM's weight on the ULF intensity


def gru_cell(
    x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
    b_ih: torch.Tensor, b_hh: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """One GRU step with nn.GRU's parameterisation (gate order r, z, n). x (B, I), h (B, H)."""
    gi = F.linear(x, w_ih, b_ih)  # (B, 3H)
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


GruCell = Callable[..., torch.Tensor]  # gru_cell's signature


def _gru_step(
    gru: nn.GRU, x: torch.Tensor, h: torch.Tensor, cell: GruCell = gru_cell
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, I), h (B, L, H) -> output (B, H), new h (B, L, H)."""
    layers = []
    for layer in range(gru.num_layers):
        x = cell(
            x, h[:, layer],
            getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}"),
            getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}"),
        )  # fmt: skip
        layers.append(x)
    return x, torch.stack(layers, dim=1)


def _masked_pool(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Utterance representation of one modality: [mean ; std ; last present step].

    x (B, L, D), weight (B, L) in {0, 1} -> (B, 3D). All zeros where no step is present.
    """
    w = weight.unsqueeze(-1)  # (B, L, 1)
    count = w.sum(dim=1).clamp(min=1.0)  # (B, 1)
    mean = (x * w).sum(dim=1) / count  # (B, D)
    var = (((x - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / count
    std = torch.sqrt(var + 1e-8)
    # Index of the last present step: argmax of weight * position (0 when nothing is present).
    positions = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)  # (L,)
    last_idx = torch.argmax(weight * positions, dim=1)  # (B,)
    has_any = (weight.sum(dim=1, keepdim=True) > 0).to(x.dtype)  # (B, 1)
    last = x[torch.arange(x.shape[0], device=x.device), last_idx] * has_any  # (B, D)
    return torch.cat([mean, std * has_any, last], dim=-1)


class MSRG(nn.Module):
    def __init__(self, config: MSRGConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MSRGConfig()
        d = config.d_model
        dims = (config.text_dim, config.audio_dim, config.visual_dim)
        # Feature normalisation, fitted on training data by the trainer; identity by default.
        for name, dim in zip(MODALITIES, dims):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        # FE
        self.fe_proj = nn.ModuleList(nn.Linear(dim, d) for dim in dims)
        self.fe_gru = nn.ModuleList(
            nn.GRU(d, d, num_layers=config.fe_layers, batch_first=True) for _ in dims
        )
        # EIA
        self.amlp = AMLP(d, config.dropout)
        self.jcaf = nn.ModuleList(JCAF(d, config.window, config.jcaf_k) for _ in dims)
        # TLF
        self.tlf_gru = nn.GRU(3 * d, 2 * d, batch_first=True)
        self.rgn = RGN(2 * d, d)
        self.head = nn.Sequential(nn.Linear(d, d // 2), nn.LeakyReLU(0.01), nn.Linear(d // 2, 1))
        self.salience = nn.Linear(d, 1)
        # ULF
        h = config.ulf_hidden
        self.ulf_proj = nn.ModuleList(nn.Linear(3 * dim, h) for dim in dims)
        self.ulf_out = nn.Linear(3 * h, 1)
        self.ulf_dropout = nn.Dropout(config.dropout)
        # SIM gate over [y_u, y_ts, |y_u - y_ts|]
        self.sim_gate = nn.Linear(3, 1)

    # ------------------------------------------------------------------ state
    def initial_state(self, batch_size: int = 1) -> State:
        c = self.config
        d, w = c.d_model, c.window
        like = self.text_mean
        zeros = lambda *shape: like.new_zeros(shape)  # noqa: E731
        return (
            *(zeros(batch_size, c.fe_layers, d) for _ in range(3)),
            *(zeros(batch_size, w, d) for _ in range(4)),
            zeros(batch_size, 2 * d),
            zeros(batch_size, d),
        )

    # ------------------------------------------------------------------ shared pieces
    def _normalise(self, xs: tuple[torch.Tensor, ...], mask: torch.Tensor) -> list[torch.Tensor]:
        """Standardise each modality and zero it where absent. xs (..., D_m), mask (..., 3)."""
        out = []
        for i, (name, x) in enumerate(zip(MODALITIES, xs)):
            mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
            out.append((x - mean) / std * mask[..., i : i + 1])
        return out

    def _intensity(self, s: torch.Tensor) -> torch.Tensor:
        return INTENSITY_RANGE * torch.tanh(self.head(s).squeeze(-1))

    # ------------------------------------------------------------------ sequence mode
    def forward(
        self, text: torch.Tensor, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
        state: State | None = None,
    ) -> SequenceOutput:  # fmt: skip
        """text (B, T, D_t), audio (B, T, D_a), visual (B, T, D_v), mask (B, T, 3) presence."""
        batch = text.shape[0]
        state = state if state is not None else self.initial_state(batch)
        mask = mask.to(text.dtype)
        xs = self._normalise((text, audio, visual), mask)
        fe, fe_h = [], []
        for i in range(3):
            h0 = state[i].transpose(0, 1).contiguous()  # (L, B, d)
            out, h_n = self.fe_gru[i](self.fe_proj[i](xs[i]), h0)  # (B, T, d), (L, B, d)
            fe.append(out)
            fe_h.append(h_n.transpose(0, 1))
        g, alpha = self.amlp(tuple(fe), mask)  # (B, T, d), (B, T, 3)
        g_windows = causal_windows(g, state[6])  # (B, T, W, d)
        attended = [
            self.jcaf[i](causal_windows(fe[i], state[3 + i]), g_windows) for i in range(3)
        ]  # 3 x (B, T, d)
        f_seq, tlf_h = self.tlf_gru(torch.cat(attended, dim=-1), state[7].unsqueeze(0))
        s = self.rgn(f_seq, state[8])  # (B, T, d)
        w = self.config.window
        new_state = (
            *fe_h,
            *(torch.cat([state[3 + i], fe[i]], dim=1)[:, -w:] for i in range(3)),
            torch.cat([state[6], g], dim=1)[:, -w:],
            tlf_h.squeeze(0),
            s[:, -1],
        )
        return SequenceOutput(
            intensity=self._intensity(s),
            modality_weights=alpha,
            salience=self.salience(s).squeeze(-1),
            state=new_state,
        )

    # ------------------------------------------------------------------ streaming mode
    def step(
        self, state: State, text: torch.Tensor, audio: torch.Tensor, visual: torch.Tensor,
        mask: torch.Tensor, cell: GruCell = gru_cell,
    ) -> tuple[StepOutput, State]:  # fmt: skip
        """One time step: text (B, D_t), audio (B, D_a), visual (B, D_v), mask (B, 3).

        cell: computes each GRU cell, gru_cell's maths (an exporter may pass an op that it
        translates to a fused node, engines/onnx_gru.py)."""
        mask = mask.to(text.dtype)
        xs = self._normalise((text, audio, visual), mask)
        fe, fe_h = [], []
        for i in range(3):
            out, h = _gru_step(self.fe_gru[i], self.fe_proj[i](xs[i]), state[i], cell)
            fe.append(out)  # (B, d)
            fe_h.append(h)
        g, alpha = self.amlp(tuple(fe), mask)  # (B, d), (B, 3)
        wins = [torch.cat([state[3 + i][:, 1:], fe[i].unsqueeze(1)], dim=1) for i in range(3)]
        g_win = torch.cat([state[6][:, 1:], g.unsqueeze(1)], dim=1)  # (B, W, d)
        attended = [self.jcaf[i](wins[i], g_win) for i in range(3)]  # 3 x (B, d)
        tlf = self.tlf_gru
        f = cell(
            torch.cat(attended, dim=-1), state[7],
            tlf.weight_ih_l0, tlf.weight_hh_l0, tlf.bias_ih_l0, tlf.bias_hh_l0,
        )  # (B, 2d)  # fmt: skip
        s = self.rgn.step(state[8], f)  # (B, d)
        out = StepOutput(
            intensity=self._intensity(s),
            modality_weights=alpha,
            salience=self.salience(s).squeeze(-1),
        )
        return out, (*fe_h, *wins, g_win, f, s)

    # ------------------------------------------------------------------ utterance level
    def utterance(
        self, text: torch.Tensor, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
        valid: torch.Tensor, intensity: torch.Tensor, salience: torch.Tensor,
    ) -> UtteranceOutput:  # fmt: skip
        """ULF + SIM over one utterance's steps (padded to a common length L).

        text/audio/visual (B, L, D_m), mask (B, L, 3) presence, valid (B, L) real steps,
        intensity and salience (B, L) from the step outputs.

        ULF: u_m = [mean ; std ; last] of modality m over its present steps,
             y_u = 3 tanh(W_o [ReLU(W_t u_t) ; ReLU(W_a u_a) ; ReLU(W_v u_v)] + b_o).
        SIM: a_t = softmax over valid steps of the salience e_t,
             y_ts = sum_t a_t yhat_t,
             g = sigmoid(w_g . [y_u, y_ts, |y_u - y_ts|] + b_g),
             y = g y_u + (1 - g) y_ts         (stays in [-3, 3]).
        """
        valid = valid.to(text.dtype)
        mask = mask.to(text.dtype)
        xs = self._normalise((text, audio, visual), mask)
        hidden = [
            self.ulf_dropout(F.relu(proj(_masked_pool(x, valid * mask[..., i]))))
            for i, (proj, x) in enumerate(zip(self.ulf_proj, xs))
        ]
        y_u = INTENSITY_RANGE * torch.tanh(self.ulf_out(torch.cat(hidden, dim=-1)).squeeze(-1))
        logits = salience.masked_fill(valid <= 0, -1e9)  # (B, L)
        attn = torch.softmax(logits, dim=-1) * valid
        attn = attn / attn.sum(dim=-1, keepdim=True).clamp(min=1e-9)
        y_ts = (attn * intensity).sum(dim=-1)  # (B,)
        gate = torch.sigmoid(
            self.sim_gate(torch.stack([y_u, y_ts, (y_u - y_ts).abs()], dim=-1)).squeeze(-1)
        )
        # An utterance without any valid step has no time-step evidence: use ULF alone.
        gate = torch.where(valid.sum(dim=-1) > 0, gate, torch.ones_like(gate))
        final = gate * y_u + (1.0 - gate) * y_ts
        return UtteranceOutput(
            utterance_intensity=y_u, timestep_intensity=y_ts, final_intensity=final, gate=gate
        )
