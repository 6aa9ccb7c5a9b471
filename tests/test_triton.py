"""Triton engine against a real Triton server (the nvidia-pytriton bundle, loopback gRPC).

The server's Python backend would ignore implicit state without a word, so every claim about
state is proven numerically: Triton's intensities equal the eager engine's step after step, and
differ from what a server that dropped state would give.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engines import EngineError, EngineUnavailable, StepInputs, UtteranceInputs, load_engine
from engines.triton_repo import STEP_MODEL, UTTERANCE_MODEL, RepoOptions, write_repository
from engines.triton_server import BundledServer, ServerOptions, default_site, free_port, missing
from msrg.checkpoint import save_checkpoint
from msrg.config import MSRGConfig
from msrg.model import MSRG

L = 48
CONFIG = MSRGConfig(max_utterance_steps=L)
TOL = 1e-4  # ONNX Runtime in the server vs eager PyTorch (tests/test_engines.py: same bound)
HISTORY = 16  # states the test repository keeps per stream

HAVE_CLIENT = importlib.util.find_spec("tritonclient") is not None
needs_client = pytest.mark.skipif(
    not HAVE_CLIENT, reason="tritonclient is not installed (pip install -e .[triton])"
)
SERVER_GAPS = missing(default_site())
needs_server = pytest.mark.skipif(
    not HAVE_CLIENT or bool(SERVER_GAPS),
    reason="; ".join(SERVER_GAPS) or "tritonclient is not installed (pip install -e .[triton])",
)


def make_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = MSRG(CONFIG)
    for name, dim in CONFIG.dims.items():
        getattr(model, f"{name}_mean").copy_(torch.randn(dim) * 0.1)
        getattr(model, f"{name}_std").copy_(torch.rand(dim) + 0.5)
    return save_checkpoint(model.eval(), path, {"seed": seed})


def steps(batch: int, n: int, seed: int) -> list[StepInputs]:
    rng = np.random.default_rng(seed)
    return [
        StepInputs(
            rng.standard_normal((batch, CONFIG.text_dim)),
            rng.standard_normal((batch, CONFIG.audio_dim)),
            rng.standard_normal((batch, CONFIG.visual_dim)),
            (rng.random((batch, 3)) > 0.3).astype(np.float32),
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return make_checkpoint(tmp_path_factory.mktemp("triton") / "m.pt", seed=3)


@pytest.fixture(scope="module")
def repos(ckpt: Path) -> dict[str, Path]:
    return {
        kind: write_repository(RepoOptions(ckpt, ckpt.parent / f"repo-{kind}", kind,
                                           state_history=HISTORY, idle_s=30.0))
        for kind in ("cpu", "gpu")
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(repos: dict[str, Path]):  # noqa: ANN201
    srv = BundledServer(ServerOptions(repos["cpu"], grpc_port=free_port()))
    url = srv.start()
    yield url
    srv.stop()


@pytest.fixture(scope="module")
def eager(ckpt: Path):  # noqa: ANN201
    return load_engine("eager", ckpt)


@pytest.fixture(scope="module")
def triton(ckpt: Path, server: str):  # noqa: ANN201
    return load_engine("triton", ckpt, triton_url=server)


# --------------------------------------------------------------------------- no server needed
def test_missing_server_is_one_line(ckpt: Path) -> None:
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnavailable) as err:
        load_engine("triton", ckpt, triton_url=url)
    message = str(err.value)
    assert "\n" not in message and url in message


def test_missing_client_names_the_extra(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "tritonclient.grpc", None)
    with pytest.raises(EngineUnavailable, match=r"pip install -e \.\[triton\]"):
        load_engine("triton", ckpt, triton_url="127.0.0.1:1")


def test_close_is_a_noop_on_other_engines(eager) -> None:  # noqa: ANN001
    state = eager.initial_state(2)
    assert eager.close(state) is None


@needs_client
def test_gpu_repository_matches_the_onnx_graph(repos: dict[str, Path]) -> None:
    """What a GPU Triton would load: config.pbtxt parses as Triton's ModelConfig, its inputs,
    results and implicit state pairs are the ONNX graph's, with the graph's shapes."""
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    for model in (STEP_MODEL, UTTERANCE_MODEL):
        folder = repos["gpu"] / model
        cfg = text_format.Parse((folder / "config.pbtxt").read_text(), pb.ModelConfig())
        assert cfg.platform == "onnxruntime_onnx" and cfg.name == model
        graph = onnx.load(str(folder / "1" / "model.onnx")).graph
        shape = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
        g_in = {v.name: shape(v) for v in graph.input}
        g_out = {v.name: shape(v) for v in graph.output}
        states = {s.input_name: s for s in cfg.sequence_batching.state}
        served_in = {i.name: i for i in cfg.input}
        # Every graph input is a request input or an implicit state, never both or neither.
        assert set(g_in) == set(served_in) | set(states)
        assert not set(served_in) & set(states)
        for name, dims in g_in.items():
            entry = served_in.get(name) or states[name]
            assert isinstance(dims[0], str)  # the dynamic batch axis Triton batches streams on
            assert list(entry.dims) == dims[1:], name
            assert entry.data_type == pb.TYPE_FP32
        for s in states.values():
            assert s.output_name == f"{s.input_name}_out" and s.output_name in g_out
            (init,) = s.initial_state
            assert list(init.dims) == list(s.dims) and init.zero_data
        for out in cfg.output:
            want = g_out[out.name][1:]
            assert (list(out.reshape.shape) if out.HasField("reshape") else list(out.dims)) == want
        if model == STEP_MODEL:
            assert len(states) == 9 and cfg.sequence_batching.HasField("oldest")
            assert not cfg.sequence_batching.control_input  # an ONNX graph has no such inputs


# --------------------------------------------------------------------------- real server
def run_eager(eager, inputs: list[StepInputs], state=None):  # noqa: ANN001, ANN201
    state = state or eager.initial_state(inputs[0].batch_size)
    out = []
    for x in inputs:
        result, state = eager.step(state, x)
        out.append(result.intensity)
    return np.stack(out), state


@needs_server
def test_state_carries_for_concurrent_interleaved_streams(triton, eager) -> None:  # noqa: ANN001
    """16 streams, each from its own thread through one engine, 200 steps: the server batches
    steps of different streams together, yet each stream matches eager with its own state."""
    n_streams, n_steps = 16, 200
    inputs = [steps(1, n_steps, seed=100 + s) for s in range(n_streams)]
    got = [np.zeros(0)] * n_streams
    errors: list[BaseException] = []

    def drive(s: int) -> None:
        try:
            state, out = triton.initial_state(1), []
            for x in inputs[s]:
                result, state = triton.step(state, x)
                out.append(result.intensity)
            got[s] = np.stack(out)
            triton.close(state)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(s,)) for s in range(n_streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    for s in range(n_streams):
        want, _ = run_eager(eager, inputs[s])
        np.testing.assert_allclose(got[s], want, atol=TOL, rtol=0)
        # What a server that dropped state gives: every step from the zero state.
        stateless = np.stack([run_eager(eager, [x])[0][0] for x in inputs[s][1:20]])
        assert np.abs(stateless - want[1:20]).max() > 100 * TOL


@needs_server
def test_batched_state_and_utterance_match_eager(triton, eager) -> None:  # noqa: ANN001
    inputs = steps(4, 50, seed=7)
    state = triton.initial_state(4)
    got = []
    for x in inputs:
        result, state = triton.step(state, x)
        got.append(result.intensity)
    triton.close(state)
    np.testing.assert_allclose(np.stack(got), run_eager(eager, inputs)[0], atol=TOL, rtol=0)
    rng = np.random.default_rng(5)
    for n in (0, 17, L + 5):
        u = UtteranceInputs(
            rng.standard_normal((3, n, CONFIG.text_dim)),
            rng.standard_normal((3, n, CONFIG.audio_dim)),
            rng.standard_normal((3, n, CONFIG.visual_dim)),
            (rng.random((3, n, 3)) > 0.3), np.ones((3, n)),
            rng.uniform(-3, 3, (3, n)), rng.standard_normal((3, n)),
        )  # fmt: skip
        a, b = triton.utterance(u), eager.utterance(u)
        np.testing.assert_allclose(a.final_intensity, b.final_intensity, atol=TOL, rtol=0)
        np.testing.assert_allclose(a.gate, b.gate, atol=TOL, rtol=0)


@needs_server
def test_rerun_from_a_saved_state_and_the_history_limit(triton, eager) -> None:  # noqa: ANN001
    """The pipeline's revision: keep the state after step 10, run on, then step again from it."""
    first, tail, revised = steps(1, 10, 1), steps(1, 5, 2), steps(1, 5, 3)
    t_state, e_state = triton.initial_state(1), eager.initial_state(1)
    for x in first:
        _, t_state = triton.step(t_state, x)
        _, e_state = eager.step(e_state, x)
    saved_t, saved_e = t_state, e_state
    for x in tail:
        _, t_state = triton.step(t_state, x)
    for x, _ in zip(revised, tail):
        a, saved_t = triton.step(saved_t, x)
        b, saved_e = eager.step(saved_e, x)
        np.testing.assert_allclose(a.intensity, b.intensity, atol=TOL, rtol=0)
    # Rerunning from the zero state is always possible (the server needs no history for it).
    a, _ = triton.step(triton.initial_state(1), first[0])
    np.testing.assert_allclose(a.intensity, run_eager(eager, first[:1])[0][0], atol=TOL)
    old = saved_t
    for x in steps(1, HISTORY + 1, 4):
        _, saved_t = triton.step(saved_t, x)
    with pytest.raises(EngineError, match=f"last {HISTORY} states"):
        triton.step(old, first[0])
    triton.close(saved_t)


@needs_server
def test_sequence_end_frees_the_stream(triton, server: str) -> None:  # noqa: ANN001
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    state = triton.initial_state(1)
    x = steps(1, 3, 9)
    for s in x:
        _, state = triton.step(state, s)
    seq = state.tensors[0].sequence_ids[0]
    triton.close(state)
    with pytest.raises(EngineError, match="was closed"):
        triton.step(state, x[0])
    # The server has ended the sequence: a request that continues it is refused there.
    client = grpcclient.InferenceServerClient(server)
    inputs = []
    for name, arr in [(n, getattr(x[0], n)) for n in ("text", "audio", "visual", "mask")] + [
        ("PARENT", np.array([[3]], np.uint64)), ("STATE_ID", np.array([[4]], np.uint64))
    ]:  # fmt: skip
        tensor = grpcclient.InferInput(name, list(arr.shape), "FP32" if arr.dtype == np.float32
                                       else "UINT64")  # fmt: skip
        tensor.set_data_from_numpy(arr)
        inputs.append(tensor)
    with pytest.raises(InferenceServerException, match="START"):
        client.infer(STEP_MODEL, inputs, sequence_id=seq)
    client.close()


@needs_server
def test_other_checkpoint_is_refused(tmp_path: Path, server: str) -> None:
    other = make_checkpoint(tmp_path / "other.pt", seed=4)
    with pytest.raises(EngineError, match="serves another checkpoint"):
        load_engine("triton", other, triton_url=server)


@needs_server
def test_server_restart_is_reported_and_streams_restart(
    ckpt: Path, repos: dict[str, Path], eager, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    options = ServerOptions(repos["cpu"], grpc_port=free_port())
    srv = BundledServer(options)
    url = srv.start()
    try:
        engine = load_engine("triton", ckpt, triton_url=url)
        x = steps(1, 6, 11)
        state = engine.initial_state(1)
        for s in x[:3]:
            _, state = engine.step(state, s)
        srv.stop()
        with pytest.raises(EngineError) as err:
            engine.step(state, x[3])
        assert "\n" not in str(err.value) and url in str(err.value)
        srv.start()
        with caplog.at_level(logging.WARNING, logger="engines.triton"):
            a, state = engine.step(state, x[3])
        assert engine.restarted_streams == 1 and "restarting it" in caplog.text
        # A clean restart: from the zero state, then state carries again.
        got = [a.intensity]
        for s in x[4:]:
            a, state = engine.step(state, s)
            got.append(a.intensity)
        np.testing.assert_allclose(np.stack(got), run_eager(eager, x[3:])[0], atol=TOL)
        engine.close(state)
    finally:
        srv.stop()
