"""The residual gating network (RGN) cell of MSRG's time-step level fusion.

    r_t = ReLU(W1 x + b1);  m_t = tanh(W2 r_t + b2)
    i_t = sigmoid(W3 x + b3);  g_t = tanh(W4 x + b4)
    y_t = ReLU(m_t * s_{t-1} + i_t * g_t)
    s_t = ReLU(ReLU(W5 x) + y_t)              (residual path)

Every gate depends on the input only, so the sequence form computes all gates for all steps at
once and loops only over the cheap element-wise recurrence. The initial state is zeros (a random
initial state would make inference non-deterministic).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RGN(nn.Module):
    def __init__(self, input_dim: int, state_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(input_dim, state_dim)
        self.w2 = nn.Linear(state_dim, state_dim)
        self.w3 = nn.Linear(input_dim, state_dim)
        self.w4 = nn.Linear(input_dim, state_dim)
        self.w5 = nn.Linear(input_dim, state_dim, bias=False)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (..., input_dim) -> memory gate m, input term i*g, residual term; each (..., state_dim)."""
        m = torch.tanh(self.w2(F.relu(self.w1(x))))
        ig = torch.sigmoid(self.w3(x)) * torch.tanh(self.w4(x))
        residual = F.relu(self.w5(x))
        return m, ig, residual

    @staticmethod
    def update(
        s_prev: torch.Tensor, m: torch.Tensor, ig: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """One recurrence step; every tensor (B, state_dim)."""
        y = F.relu(m * s_prev + ig)
        return F.relu(residual + y)

    def step(self, s_prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """s_prev (B, state_dim), x (B, input_dim) -> s (B, state_dim)."""
        return self.update(s_prev, *self.gates(x))

    def forward(self, x: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_dim), s0 (B, state_dim) -> states (B, T, state_dim)."""
        m, ig, residual = self.gates(x)
        s = s0
        states = []
        for t in range(x.shape[1]):
            s = self.update(s, m[:, t], ig[:, t], residual[:, t])
            states.append(s)
        return torch.stack(states, dim=1)
