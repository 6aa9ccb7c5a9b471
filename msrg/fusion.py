"""EIA: emotion-intensity attention = AMLP (adaptive multimodal linear pooling) + JCAF (joint
cross-attention fusion over a causal window).

Both modules work on one time step at a time or on every step of a sequence at once; the sequence
form is the step form applied to all steps, so streaming and training compute the same thing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


class AMLP(nn.Module):
    """Adaptive multimodal linear pooling.

        f_m = W_m X_m + b_m                     (d -> 2d)
        n_m = p_m * ||f_m||_2                    per sample and step (never across the batch)
        alpha_m = n_m / (n_t + n_a + n_v + eps)  published as the modality weights
        E = Dropout(sum_m alpha_m f_m)
        G = L2-normalise(SumPool over feature pairs(E))   (2d -> d)

    A modality whose presence p_m is 0 gets alpha_m = 0 exactly.
    """

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(d_model, 2 * d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, xs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], presence: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """xs: three (..., d); presence (..., 3). Returns G (..., d) and alpha (..., 3)."""
        f = torch.stack([proj(x) for proj, x in zip(self.proj, xs)], dim=-2)  # (..., 3, 2d)
        norms = torch.linalg.vector_norm(f, dim=-1) * presence  # (..., 3)
        alpha = norms / (norms.sum(dim=-1, keepdim=True) + EPS)  # (..., 3)
        e = self.dropout((alpha.unsqueeze(-1) * f).sum(dim=-2))  # (..., 2d)
        pooled = e.unflatten(-1, (-1, 2)).sum(dim=-1)  # (..., d): sum over adjacent pairs
        g = pooled / (torch.linalg.vector_norm(pooled, dim=-1, keepdim=True) + EPS)
        return g, alpha


class JCAF(nn.Module):
    """Joint cross-attention of one modality against the fused AMLP output over W steps.

    With rows as time (the newest step last) and J = [X ; G] along features:
        C = tanh( X^T (J^T A)^T / sqrt(2d) )     X (W, d), J (W, 2d), A (W, W)  -> C (d, 2d)
        H = ReLU( C Wc^T + X^T Wx^T )            Wc: 2d -> k, Wx: W -> k        -> H (d, k)
        Xatt = (H Wh^T)^T + X                    Wh: k -> W, residual          -> (W, d)
    The newest row of Xatt is this step's attended feature.
    """

    def __init__(self, d_model: int, window: int, k: int) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(2 * d_model)
        self.a = nn.Parameter(torch.empty(window, window))
        nn.init.xavier_uniform_(self.a)
        self.wc = nn.Linear(2 * d_model, k, bias=False)
        self.wx = nn.Linear(window, k, bias=False)
        self.wh = nn.Linear(k, window, bias=False)

    def forward(self, x_win: torch.Tensor, g_win: torch.Tensor) -> torch.Tensor:
        """x_win, g_win: (..., W, d) causal windows, oldest first. Returns (..., d), newest step."""
        j = torch.cat([x_win, g_win], dim=-1)  # (..., W, 2d)
        ja = torch.matmul(self.a.transpose(0, 1), j)  # (A^T J) = (J^T A)^T: (..., W, 2d)
        c = torch.tanh(torch.matmul(x_win.transpose(-1, -2), ja) * self.scale)  # (..., d, 2d)
        h = F.relu(self.wc(c) + self.wx(x_win.transpose(-1, -2)))  # (..., d, k)
        # Only the newest row of Xatt is used: (H Wh^T)^T[-1] = H @ Wh[-1]. Written as a linear
        # with one output row, not a matrix-vector matmul: ONNX Runtime runs a 1-D right-hand
        # MatMul on a slow path (~20% of the exported step at B=1); the numbers are the same.
        newest = F.linear(h, self.wh.weight[-1:]).squeeze(-1)  # (..., d)
        return newest + x_win[..., -1, :]


def causal_windows(x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """x (B, T, d), history (B, W, d) of the steps before x (oldest first; zeros at the start)
    -> (B, T, W, d): at step t the steps t-W+1 .. t. Only the newest W-1 history rows are used."""
    window = history.shape[1]
    extended = torch.cat([history[:, 1:], x], dim=1)  # (B, W - 1 + T, d)
    return extended.unfold(1, window, 1).transpose(-1, -2)  # (B, T, W, d)
