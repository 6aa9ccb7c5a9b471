"""The lab: tools around the model that read data and drive the live front end.

    python -m lab.build_dataset   labelled clips -> an MMSA-format pickle (live extractors)
    python -m lab.train           a checkpoint from such pickles
    python -m lab.evaluate        a checkpoint on a fold, through the live replay path
    python -m lab.tune_text / lab.reembed_text / lab.modality_record

This package sits above msrg/ (the model library) and realtime/ (the live front end) and may
import both; neither imports it. The old `python -m msrg.<tool>` names still run these.
"""
