"""`python -m msrg.tune_text` runs `python -m lab.tune_text` (moved: msrg/ is the model library and
imports nothing above it; this name is kept for scripts and notes that use it)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("lab.tune_text", run_name="__main__", alter_sys=True)
