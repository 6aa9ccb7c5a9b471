"""`python -m msrg.train` runs `python -m lab.train` (moved: msrg/ is the model library and
imports nothing above it; this name is kept for scripts and notes that use it)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("lab.train", run_name="__main__", alter_sys=True)
