"""`python -m msrg.modality_record` runs `python -m lab.modality_record` (moved: msrg/ is the model library and
imports nothing above it; this name is kept for scripts and notes that use it)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("lab.modality_record", run_name="__main__", alter_sys=True)
