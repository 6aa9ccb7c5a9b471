"""Per-step latency of MSRG's incremental `step` against recomputing `forward` over the last T steps.

    python -m benchmarks.step_latency [--repeats 200]

One CPU thread, batch 1, eager PyTorch, live feature dimensions. Writes
benchmarks/results/step_latency.json.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.machine import describe, percentiles_ms, print_table, start_run, write_result
from msrg.config import MSRGConfig
from msrg.model import MSRG


def _time(fn, repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--windows", type=int, nargs="+", default=[50, 200, 1000])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start_run()
    torch.manual_seed(0)
    config = MSRGConfig()
    model = MSRG(config).eval()
    results, rows = {}, []
    with torch.inference_mode():
        state = model.initial_state(1)
        x = (torch.randn(1, config.text_dim), torch.randn(1, config.audio_dim),
             torch.randn(1, config.visual_dim), torch.ones(1, 3))  # fmt: skip
        step = percentiles_ms(_time(lambda: model.step(state, *x), args.repeats))
        for steps in args.windows:
            seq = (torch.randn(1, steps, config.text_dim), torch.randn(1, steps, config.audio_dim),
                   torch.randn(1, steps, config.visual_dim), torch.ones(1, steps, 3))  # fmt: skip
            reps = max(10, args.repeats * 50 // steps)
            full = percentiles_ms(_time(lambda seq=seq: model(*seq), reps, warmup=2))
            ratio = full["p50"] / step["p50"]
            results[f"T={steps}"] = {"step_ms": step, "forward_ms": full, "ratio_p50": round(ratio, 1)}
            rows.append([steps, step["p50"], step["p95"], full["p50"], full["p95"], f"{ratio:.1f}x"])
    print(f"machine: {describe()['cpu']}, 1 thread, batch 1")
    print_table(["T", "step p50 ms", "step p95 ms", "forward(T) p50 ms", "forward(T) p95 ms", "ratio"], rows)
    path = write_result("step_latency", {"batch": 1, "model": "random init, default config",
                                         "config": config.to_dict(), "results": results},
                        engine="eager", threads=1)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
