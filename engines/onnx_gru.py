"""MSRG's GRU cells as single ONNX `GRU` nodes in the exported step graph.

Traced as written, one GRU cell becomes ~12 ONNX nodes (two Gemms, splits, gate arithmetic), and
at batch 1 ONNX Runtime's cost is per node, not per FLOP. ONNX has a GRU operator whose
`linear_before_reset=1` form is exactly PyTorch's cell (n = tanh(W_in x + b_in + r (W_hn h +
b_hn))), so the export routes each cell through a custom op (`affect_monitor::gru_cell`) that the
exporter translates to one GRU node of sequence length 1. PyTorch orders the gates r, z, n and
ONNX z, r, n: the translation reorders the weight rows with Split/Concat on initialisers, which
ONNX Runtime folds into constants when it loads the graph.

Only the ONNX export uses this: eager PyTorch and TensorRT run msrg.model's cell unchanged, and
the engine parity tests compare the exported graph with eager.
"""

from __future__ import annotations

from typing import Any

import torch

from msrg import model as msrg_model

_OP = None


def gru_cell_op() -> Any:
    """The custom op (registered on first use); call it like msrg.model's GRU cell."""
    global _OP
    if _OP is None:

        @torch.library.custom_op("affect_monitor::gru_cell", mutates_args=())
        def gru_cell(
            x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
            b_ih: torch.Tensor, b_hh: torch.Tensor,
        ) -> torch.Tensor:  # fmt: skip
            return msrg_model.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)

        @gru_cell.register_fake
        def _(x, h, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN202 - shapes only
            return torch.empty_like(h)

        _OP = gru_cell
    return _OP


def translation_table() -> dict:
    """custom_translation_table for torch.onnx.export (dynamo)."""
    from onnxscript import opset18 as op

    def onnx_gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN202 - exporter values
        hidden = int(w_hh.shape[1])
        w_r, w_z, w_n = op.Split(w_ih, num_outputs=3, axis=0)
        r_r, r_z, r_n = op.Split(w_hh, num_outputs=3, axis=0)
        wb_r, wb_z, wb_n = op.Split(b_ih, num_outputs=3, axis=0)
        rb_r, rb_z, rb_n = op.Split(b_hh, num_outputs=3, axis=0)
        weights = op.Unsqueeze(op.Concat(w_z, w_r, w_n, axis=0), [0])  # (1, 3H, I)
        recurrence = op.Unsqueeze(op.Concat(r_z, r_r, r_n, axis=0), [0])  # (1, 3H, H)
        bias = op.Unsqueeze(op.Concat(wb_z, wb_r, wb_n, rb_z, rb_r, rb_n, axis=0), [0])
        _, last = op.GRU(
            op.Unsqueeze(x, [0]), weights, recurrence, bias, None, op.Unsqueeze(h, [0]),
            hidden_size=hidden, linear_before_reset=1,
        )  # fmt: skip  # last: (1, B, H)
        return op.Squeeze(last, [0])

    gru_cell_op()
    return {torch.ops.affect_monitor.gru_cell.default: onnx_gru_cell}
