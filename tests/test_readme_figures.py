"""The measured figures are the JSON's: every block between `<!-- figures:NAME -->` markers in
README.md (one table of the latest runs, and the demo's output) and in docs/benchmarks.md (every
run) is what `python -m benchmarks.readme_figures` prints from benchmarks/results/*.json, and the
demo output comes from a run of the checkpoint that ships. On failure: rerun the benchmark (or
`python -m benchmarks.demo_output` after a new checkpoint), then `make figures`.
"""

from __future__ import annotations

import hashlib

import pytest

from benchmarks import readme_figures
from benchmarks.machine import ROOT, latest, read_runs

README = (ROOT / "README.md").read_text()
DOCS = (ROOT / "docs" / "benchmarks.md").read_text()
PAGES = {"README.md": (README, readme_figures.README_BLOCKS),
         "docs/benchmarks.md": (DOCS, readme_figures.DOC_BLOCKS)}  # fmt: skip


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_block_is_on_its_page_and_matches_the_json(page: str) -> None:
    text, blocks = PAGES[page]
    rendered = readme_figures.render(blocks)
    found = readme_figures.blocks_in(text)
    assert set(found) == set(rendered), f"{page}: blocks and generated blocks differ in name"
    for name, body in rendered.items():
        assert found[name] == body, f"{page}: block {name!r} differs from the JSON; make figures"


def test_the_readme_has_one_table_of_figures_with_the_latest_run_of_each_benchmark() -> None:
    table = readme_figures.blocks_in(README)["figures"].splitlines()
    assert table[0].startswith("| benchmark | latest run | target | ran on |")
    rows = table[2:]
    assert all(r.startswith("| ") for r in rows) and "<!--" not in "\n".join(rows)
    for name in ("step_latency", "engines", "extractors", "tts_asr", "pipeline", "dashboard",
                 "serving"):  # fmt: skip
        run = read_runs(name)[-1]
        (row,) = [r for r in rows if f"(`{name}`)" in r]
        assert row.rstrip(" |").split("| ")[-1].startswith(run["date"][:10]), (name, row)
        assert run["machine"]["cpu"] in row
    # Every run of the pipeline benchmark is on the history page, one row per mode.
    pipeline_rows = [r for r in readme_figures.blocks_in(DOCS)["pipeline"].splitlines()[2:]]
    assert len(pipeline_rows) == sum(len(r["results"]) for r in read_runs("pipeline"))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_changed_figure_is_caught(page: str, tmp_path) -> None:
    text, blocks = PAGES[page]
    rendered = readme_figures.render(blocks)
    assert readme_figures.blocks_in(readme_figures.rewrite(text, rendered)) == rendered
    name = "figures" if page == "README.md" else "engines"
    edited = text.replace(rendered[name], rendered[name].replace("| ", "| 9", 1), 1)
    assert edited != text
    copy = tmp_path / "page.md"
    copy.write_text(edited)
    assert readme_figures.differences(copy, rendered) == [
        f"page.md: block {name!r} differs from the JSON"]
    copy.write_text(text.replace(f"<!-- figures:{name} -->", "", 1))
    assert f"page.md: no block {name!r}" in readme_figures.differences(copy, rendered)
    assert readme_figures.main(["--check"]) == 0  # the files themselves agree


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
