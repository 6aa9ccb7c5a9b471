"""The README's figures are the JSON's: every block between `<!-- figures:NAME -->` markers is what
`python -m benchmarks.readme_figures` prints from benchmarks/results/*.json, and the demo output
comes from a run of the checkpoint that ships. On failure: rerun the benchmark (or `python -m
benchmarks.demo_output` after a new checkpoint), then `python -m benchmarks.readme_figures --write`.
"""

from __future__ import annotations

import hashlib

from benchmarks import readme_figures
from benchmarks.machine import ROOT, latest

README = (ROOT / "README.md").read_text()


def test_every_block_is_in_the_readme_and_matches_the_json() -> None:
    rendered = readme_figures.render_all()
    found = readme_figures.readme_blocks(README)
    assert set(found) == set(rendered), "README blocks and generated blocks differ in name"
    for name, body in rendered.items():
        assert found[name] == body, f"README block {name!r} differs from the JSON; rerun --write"


def test_a_changed_figure_is_caught() -> None:
    rendered = readme_figures.render_all()
    text = readme_figures.rewrite(README, rendered)
    assert readme_figures.readme_blocks(text) == rendered
    edited = text.replace(rendered["engines"], rendered["engines"].replace("|", "| 9", 1))
    assert edited != text
    assert readme_figures.readme_blocks(edited)["engines"] != rendered["engines"]
    assert readme_figures.main(["--check"]) == 0  # the README itself agrees


def test_demo_output_is_from_the_shipped_checkpoint() -> None:
    run = latest("demo")
    shipped = ROOT / "msrg" / "weights" / "msrg-live.pt"
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert run["checkpoint"]["path"] == "msrg/weights/msrg-live.pt"
    assert run["checkpoint"]["sha256"] == digest, (
        "the shipped checkpoint changed since the demo run: python -m benchmarks.demo_output "
        "&& python -m benchmarks.readme_figures --write"
    )
    lines = [u["line"] for u in run["utterances"]]
    assert all(line.startswith("utterance ") for line in lines) and len(lines) >= 4
    assert "\n".join(lines[:4]) in README


def test_engines_measures_the_shipped_checkpoint_by_default() -> None:
    from benchmarks import engines

    assert engines.DEFAULT_CHECKPOINT == ROOT / "msrg" / "weights" / "msrg-live.pt"
    run = latest("engines")
    assert run["checkpoint"]["path"] == "msrg/weights/msrg-live.pt"
    assert run["checkpoint"]["dims"]["d_model"] > 0
    for key in ("date", "git_commit", "machine", "load_before", "load_after", "busy", "threads"):
        assert key in run, key


def test_results_keep_history_and_flag_a_busy_machine(tmp_path, monkeypatch) -> None:
    from benchmarks import machine

    monkeypatch.setattr(machine, "RESULTS_DIR", tmp_path)
    shipped = ROOT / "msrg" / "weights" / "msrg-live.pt"
    for figure in (1.0, 2.0):
        machine.start_run()
        machine.write_result("demo-bench", {"figure": figure}, checkpoint=shipped, engine="onnx",
                             threads=1)  # fmt: skip
    runs = machine.read_runs("demo-bench")
    assert [r["figure"] for r in runs] == [1.0, 2.0]  # appended, the earlier run kept
    run = runs[-1]
    assert run["checkpoint"]["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert run["engine"] == "onnx" and run["threads"] == 1 and run["machine"]["cores"] >= 1
    cores = run["machine"]["cores"]
    assert run["busy"] == machine.is_busy(run["load_before"], run["load_after"], cores)
    assert machine.is_busy([cores + 0.5], [0.0], cores) and not machine.is_busy([0.1], [0.2], cores)
    busy_line = machine.load_line({**run, "load_before": [cores + 1.0], "load_after": [0.0]})
    assert "BUSY" in busy_line
    # a benchmark's own machine facts (the dashboard's Qt platform) add to the description
    machine.start_run()
    machine.write_result("demo-bench", {"machine": {"qt_platform": "offscreen"}})
    own = machine.read_runs("demo-bench")[-1]["machine"]
    assert own["qt_platform"] == "offscreen" and own["cores"] == cores and own["cpu"]
