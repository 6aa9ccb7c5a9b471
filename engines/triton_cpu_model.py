"""Triton Python-backend model for the `cpu` repository (copied there as `model.py`).

Runs inside Triton's Python stub, not in our process: it imports NumPy, ONNX Runtime and Triton's
`triton_python_backend_utils` only. The stub starts an isolated interpreter that ignores
PYTHONPATH, so the folder holding numpy < 2 and onnxruntime comes in through
AFFECT_MONITOR_PYTHONPATH (engines/triton_server.py sets it). NumPy 2 in the stub returns
empty output tensors without an error (Triton 2.51's stub), hence the separate folder.

function=step: state is kept here, per correlation id, as a short history of values addressed
by client-chosen state ids: a request carries PARENT (the state to step from; 0 = zero state) and
STATE_ID (the id its new state is kept under). START clears a stream's history, END frees it, and
a stream silent for idle_s is dropped, as Triton drops its sequence slot then. The requests of one
`execute` (different streams, the sequence batcher's batch) run as one ONNX Runtime call.

function=utterance: stateless; each request's batch runs as it comes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import OrderedDict

sys.path[:0] = [p for p in os.environ.get("AFFECT_MONITOR_PYTHONPATH", "").split(os.pathsep) if p]

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

STEP_INPUTS = ("text", "audio", "visual", "mask")
STEP_RESULTS = ("intensity", "modality_weights", "salience")
STATE_NAMES = (
    "fe_h_text", "fe_h_audio", "fe_h_visual",
    "win_text", "win_audio", "win_visual", "win_g",
    "tlf_h", "rgn_s",
)  # fmt: skip  # contract.names.STATE_NAMES: this file cannot import the project (tests/test_contract.py)
UNKNOWN_STREAM = "unknown stream"  # the client restarts the stream when it reads this


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.function = params["function"]
        folder = os.path.join(args["model_repository"], args["model_version"])
        opts = ort.SessionOptions()
        # One thread per instance: the server runs one instance per core it may use.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            os.path.join(folder, params["onnx_file"]), opts, providers=["CPUExecutionProvider"]
        )
        self.outputs = [o.name for o in self.session.get_outputs()]
        if self.function == "step":
            self.history_len = int(params["state_history"])
            self.idle_s = float(params["idle_s"])
            # corrid -> OrderedDict(state id -> tuple of (1, ...) arrays), oldest first
            self.streams: dict[int, OrderedDict] = {}
            self.last_seen: dict[int, float] = {}
            self.zero = tuple(
                np.zeros([1, *i.shape[1:]], np.float32)
                for i in self.session.get_inputs()
                if i.name in STATE_NAMES
            )
            self.next_sweep = time.monotonic() + self.idle_s

    def execute(self, requests: list) -> list:
        if self.function == "utterance":
            return [self._utterance(r) for r in requests]
        return self._steps(requests)

    # ------------------------------------------------------------------ step
    def _scalar(self, request, name: str) -> int:  # noqa: ANN001
        return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0])

    def _steps(self, requests: list) -> list:
        now = time.monotonic()
        if now >= self.next_sweep:
            self._drop_idle(now)
        responses: list = [None] * len(requests)
        runnable = []  # (index, corrid, state id, end, parent state)
        for i, request in enumerate(requests):
            corrid = self._scalar(request, "CORRID")
            parent, state_id = self._scalar(request, "PARENT"), self._scalar(request, "STATE_ID")
            if self._scalar(request, "START"):
                self.streams[corrid] = OrderedDict()
            history = self.streams.get(corrid)
            if history is None:
                responses[i] = self._error(f"{UNKNOWN_STREAM} {corrid} (server restarted?)")
                continue
            self.last_seen[corrid] = now
            state = self.zero if parent == 0 else history.get(parent)
            if state is None:
                responses[i] = self._error(
                    f"state {parent} of stream {corrid} is no longer held (the server keeps the "
                    f"last {self.history_len} states per stream)"
                )
                continue
            runnable.append((i, corrid, state_id, self._scalar(request, "END"), state))
        if runnable:
            feed = {
                n: np.concatenate(
                    [pb_utils.get_input_tensor_by_name(requests[i], n).as_numpy()
                     for i, *_ in runnable]
                )
                for n in STEP_INPUTS
            }  # fmt: skip  # (B, D) per input, one row per stream
            for k, name in enumerate(STATE_NAMES):
                feed[name] = np.concatenate([entry[4][k] for entry in runnable])
            out = self.session.run(self.outputs, feed)  # 3 results, then 9 state tensors
            for row, (i, corrid, state_id, end, _) in enumerate(runnable):
                results = [
                    pb_utils.Tensor(n, np.ascontiguousarray(out[k][row : row + 1]))
                    for k, n in enumerate(STEP_RESULTS)
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=results)
                if end:
                    self.streams.pop(corrid, None)
                    self.last_seen.pop(corrid, None)
                    continue
                history = self.streams[corrid]
                history[state_id] = tuple(t[row : row + 1].copy() for t in out[3:])
                while len(history) > self.history_len:
                    history.popitem(last=False)
        return responses

    def _drop_idle(self, now: float) -> None:
        for corrid, seen in list(self.last_seen.items()):
            if now - seen > self.idle_s:
                self.streams.pop(corrid, None)
                del self.last_seen[corrid]
        self.next_sweep = now + self.idle_s / 4

    @staticmethod
    def _error(message: str):  # noqa: ANN205
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))

    # ------------------------------------------------------------------ utterance
    def _utterance(self, request):  # noqa: ANN001, ANN202
        feed = {
            i.name: pb_utils.get_input_tensor_by_name(request, i.name).as_numpy()
            for i in self.session.get_inputs()
        }
        out = self.session.run(self.outputs, feed)
        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(t)) for n, t in zip(self.outputs, out)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        if self.function == "step":
            self.streams.clear()
