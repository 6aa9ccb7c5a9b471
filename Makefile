# The two commands of the README: `make demo` and `make test`. Each sets itself up on first use.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: demo test lint bench figures setup clean-venv gpu-check

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) main.py --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks.step_latency
	$(PY) -m benchmarks.engines
	$(PY) -m benchmarks.extractors
	$(PY) -m benchmarks.pipeline
	$(PY) -m benchmarks.multistream
	QT_QPA_PLATFORM=offscreen $(PY) -m benchmarks.dashboard
	$(PY) -m benchmarks.readme_figures --write

# After a new checkpoint: rerun the demo for the README's example output, then rewrite the figure
# blocks of README.md (the latest runs) and docs/benchmarks.md (every run) from
# benchmarks/results/*.json (tests/test_readme_figures.py checks both).
figures: $(STAMP)
	$(PY) -m benchmarks.demo_output
	$(PY) -m benchmarks.readme_figures --write

# The GPU half (TensorRT parity and speed) in its own .venv-gpu; one line and exit 2 without a GPU.
gpu-check:
	bash scripts/gpu_check.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
