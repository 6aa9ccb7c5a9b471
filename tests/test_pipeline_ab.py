"""benchmarks.pipeline_ab runs one snippet in an old build and in this one: this build must keep
accepting the call that snippet makes (it broke once when run_mode gained an argument)."""

from __future__ import annotations

import ast
import inspect

from benchmarks import pipeline, pipeline_ab


def test_the_snippet_call_still_binds_to_run_mode() -> None:
    calls = [
        node
        for node in ast.walk(ast.parse(pipeline_ab._ONE_RUN))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_mode"
    ]
    assert len(calls) == 1
    call = calls[0]
    placeholders = [object()] * len(call.args)
    inspect.signature(pipeline.run_mode).bind(*placeholders, **{k.arg: None for k in call.keywords})
