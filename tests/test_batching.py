"""engines/batching.py: several streams stepped concurrently through one SharedEngine give what
each gives alone, a silent stream costs the others at most max_wait_s, errors stay with the
stream that caused them, and shutdown joins the batcher thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engines import Engine, EngineState, StepInputs, StepResult, UtteranceInputs, load_engine
from engines.batching import SharedEngine, SharedEngineError
from engines.fallback import FallbackEngine
from msrg.checkpoint import save_checkpoint
from msrg.config import MSRGConfig
from msrg.model import MSRG

CONFIG = MSRGConfig(max_utterance_steps=48)  # small L keeps the utterance graph cheap
TOL = 1e-5
N_STREAMS = 3
N_STEPS = 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = MSRG(CONFIG)
    for name, dim in CONFIG.dims.items():  # non-trivial normalisation, as in test_engines
        getattr(model, f"{name}_mean").copy_(torch.randn(dim) * 0.1)
        getattr(model, f"{name}_std").copy_(torch.rand(dim) + 0.5)
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("ckpt") / "msrg.pt")


@pytest.fixture(scope="module")
def engines(checkpoint: Path) -> dict[str, Engine]:
    eager = load_engine("eager", checkpoint)
    return {
        "onnx": load_engine("onnx", checkpoint),  # exports on first use
        "eager": eager,
        "fallback": FallbackEngine(load_engine("eager", checkpoint), None),  # nested states
    }


def stream_inputs(seed: int, n: int = N_STEPS) -> list[StepInputs]:
    rng = np.random.default_rng(seed)
    d = CONFIG.dims
    return [
        StepInputs(
            text=rng.standard_normal((1, d["text"])),
            audio=rng.standard_normal((1, d["audio"])),
            visual=rng.standard_normal((1, d["visual"])),
            mask=(rng.random((1, 3)) > 0.3).astype(np.float32),
        )
        for _ in range(n)
    ]


def run_alone(engine: Engine, steps: list[StepInputs]) -> list[StepResult]:
    state = engine.initial_state(1)
    out = []
    for inputs in steps:
        result, state = engine.step(state, inputs)
        out.append(result)
    return out


def run_concurrently(shared: SharedEngine, streams: list[list[StepInputs]]) -> list[list]:
    handles = [shared.handle() for _ in streams]
    outputs: list[list] = [[] for _ in streams]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(streams))

    def work(k: int) -> None:
        try:
            barrier.wait()
            engine = handles[k]
            state = engine.initial_state(1)
            for inputs in streams[k]:
                result, state = engine.step(state, inputs)
                outputs[k].append(result)
            engine.close(state)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return outputs


def assert_close(a: list[StepResult], b: list[StepResult]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("intensity", "modality_weights", "salience"):
            np.testing.assert_allclose(getattr(x, name), getattr(y, name), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", ["onnx", "eager", "fallback"])
def test_concurrent_streams_match_each_stream_alone(engines: dict[str, Engine], kind: str) -> None:
    engine = engines[kind]
    streams = [stream_inputs(seed) for seed in range(N_STREAMS)]
    alone = [run_alone(engine, s) for s in streams]
    # A generous wait: the streams' threads get the time to meet, so the steps really batch.
    with SharedEngine(engine, max_wait_s=0.05) as shared:
        together = run_concurrently(shared, streams)
        stats = shared.stats()
    for k in range(N_STREAMS):
        assert_close(together[k], alone[k])
    assert stats["requests"] == N_STREAMS * N_STEPS
    assert stats["mean_batch"] > 1.5, stats  # they were batched, not run one by one


def test_states_stay_values_and_revisions_rerun(engines: dict[str, Engine]) -> None:
    """A saved state re-run through the shared engine gives the same result again, and the
    batched step leaves the states passed in untouched."""
    engine = engines["onnx"]
    steps = stream_inputs(7, 6)
    with SharedEngine(engine, max_wait_s=0.0) as shared:
        a, b = shared.handle(), shared.handle()
        state_a, state_b = a.initial_state(1), b.initial_state(1)
        for inputs in steps[:3]:
            _, state_a = a.step(state_a, inputs)
        saved = state_a
        before = [np.array(t, copy=True) for t in saved.tensors]
        first = [a.step(saved, x)[0] for x in steps[3:]]
        _ = b.step(state_b, steps[0])
        again = [a.step(saved, x)[0] for x in steps[3:]]
        assert all(np.array_equal(t, u) for t, u in zip(saved.tensors, before))
        assert_close(first, again)


def test_a_silent_stream_costs_at_most_max_wait_and_closing_it_stops_the_wait(
    engines: dict[str, Engine],
) -> None:
    engine = engines["eager"]
    steps = stream_inputs(11, 4)
    with SharedEngine(engine, max_wait_s=0.3) as shared:
        busy, silent = shared.handle("busy"), shared.handle("silent")
        state = busy.initial_state(1)
        t0 = time.monotonic()
        _, state = busy.step(state, steps[0])  # waits for `silent`, which never comes
        waited = time.monotonic() - t0
        assert 0.25 <= waited < 2.0
        silent.close(silent.initial_state(1))  # the silent stream ends
        t0 = time.monotonic()
        for inputs in steps[1:]:
            _, state = busy.step(state, inputs)
        assert time.monotonic() - t0 < 0.25  # three steps, nobody left to wait for


def test_a_bad_state_fails_only_its_own_stream(engines: dict[str, Engine]) -> None:
    eager, onnx = engines["eager"], engines["onnx"]
    steps = stream_inputs(5, 1)
    with SharedEngine(eager, max_wait_s=0.2) as shared:
        good, bad = shared.handle(), shared.handle()
        results: dict[str, object] = {}

        def step(name: str, engine: Engine, state: EngineState) -> None:
            try:
                results[name] = engine.step(state, steps[0])[0]
            except Exception as exc:
                results[name] = exc

        threads = [
            threading.Thread(target=step, args=("good", good, good.initial_state(1))),
            threading.Thread(target=step, args=("bad", bad, onnx.initial_state(1))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert isinstance(results["good"], StepResult)
    assert isinstance(results["bad"], ValueError) and "onnx" in str(results["bad"])


def test_utterance_and_initial_state_go_to_the_wrapped_engine(engines: dict[str, Engine]) -> None:
    engine = engines["onnx"]
    rng = np.random.default_rng(2)
    d = CONFIG.dims
    n = 12
    utt = UtteranceInputs(
        rng.standard_normal((1, n, d["text"])), rng.standard_normal((1, n, d["audio"])),
        rng.standard_normal((1, n, d["visual"])), np.ones((1, n, 3)), np.ones((1, n)),
        rng.standard_normal((1, n)), rng.standard_normal((1, n)),
    )  # fmt: skip
    with SharedEngine(engine) as shared:
        handle = shared.handle()
        assert handle.name == engine.name and handle.config is engine.config
        assert "batched across 1 streams" in handle.selection_note
        got = handle.utterance(utt)
        state = handle.initial_state(2)
        assert state.batch_size == 2 and state.engine == engine.name
    np.testing.assert_allclose(got.final_intensity, engine.utterance(utt).final_intensity, atol=TOL)


def test_shutdown_joins_the_thread_and_refuses_new_work(engines: dict[str, Engine]) -> None:
    shared = SharedEngine(engines["eager"])
    handle = shared.handle()
    state = handle.initial_state(1)
    handle.step(state, stream_inputs(1, 1)[0])
    assert shared.running
    assert shared.shutdown(timeout_s=2.0)
    assert not shared.running
    with pytest.raises(SharedEngineError, match="shut down"):
        handle.step(state, stream_inputs(1, 1)[0])
    with pytest.raises(SharedEngineError, match="shut down"):
        shared.handle()


@pytest.mark.parametrize("name", ["tensorrt-fp16", "triton"])
def test_tensorrt_and_triton_are_refused_in_one_line(engines: dict[str, Engine], name: str) -> None:
    class Named(FallbackEngine):  # any engine whose name says which back-end it is
        @property  # type: ignore[override]
        def name(self) -> str:
            return name

    with pytest.raises(SharedEngineError) as info:
        SharedEngine(Named(engines["eager"], None))
    message = str(info.value)
    assert "\n" not in message and name in message and "onnx or eager" in message


def test_a_lone_stream_steps_on_its_own_thread(engines: dict[str, Engine]) -> None:
    """Nothing to batch with: no hand-off to the batcher thread. With a second active stream,
    the batcher runs the steps."""
    threads: list[str] = []

    class Recording(FallbackEngine):
        def step(self, state, inputs):  # noqa: ANN001, ANN201
            threads.append(threading.current_thread().name)
            return super().step(state, inputs)

    with SharedEngine(Recording(engines["eager"], None), max_wait_s=0.0) as shared:
        lone = shared.handle()
        lone.step(lone.initial_state(1), stream_inputs(1, 1)[0])
        other = shared.handle()
        lone.step(lone.initial_state(1), stream_inputs(1, 1)[0])
        other.close(other.initial_state(1))
    assert threads == [threading.current_thread().name, "engine-batcher"]
