"""Stamp an existing checkpoint with the modality record of the set it was trained on.

    python -m lab.modality_record --data SET.pkl --checkpoint CKPT.pt

The record (msrg/modalities.py) is computed from the presence masks of the data's `train` split
(several files: their train splits joined, as lab.train joins them) and written into the
checkpoint's meta["modalities"]. The file is rewritten atomically (temp file + rename) and the
weights are checked to be bit-identical afterwards. Checkpoints written by lab.train since the
record exists carry it already; this is for older ones.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from msrg.data import DataFormatError, concat_sets, load_mmsa
from msrg.modalities import ModalityRecordError, describe_usage, modality_record, modality_usage


class StampError(ValueError):
    """The checkpoint cannot be stamped from this data; one line."""


def record_from_data(paths: list[Path]) -> tuple[dict[str, Any], dict[str, int]]:
    """The modality record of the joined train splits of `paths` (their names kept in it), and
    the data's feature dimensions."""
    train = concat_sets([load_mmsa(p, ("train",))["train"] for p in paths])
    record = modality_record(train.mask, train.valid)
    record["data"] = [str(p) for p in paths]
    return record, train.dims


def stamp(checkpoint: Path, paths: list[Path]) -> dict[str, Any]:
    """Write the record of `paths` into `checkpoint`; returns it. Raises StampError,
    DataFormatError or CheckpointError with one line."""
    import torch

    from msrg.checkpoint import check_feature_dims, load_checkpoint

    loaded = load_checkpoint(checkpoint)  # a foreign or corrupted file is refused here
    record, dims = record_from_data(paths)
    check_feature_dims(loaded.config, dims, f"checkpoint {checkpoint}", " + ".join(map(str, paths)))
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    before = payload["state_dict"]
    payload["meta"] = {**payload.get("meta", {}), "modalities": record}
    fd, tmp = tempfile.mkstemp(dir=checkpoint.parent, prefix=checkpoint.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        after = torch.load(tmp, map_location="cpu", weights_only=True)["state_dict"]
        same = before.keys() == after.keys() and all(
            torch.equal(before[k], after[k]) for k in before
        )
        if not same:
            raise StampError(f"the rewritten {checkpoint} would change the weights; left as it was")
        os.replace(tmp, checkpoint)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.modality_record",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="the MMSA pickle(s) the checkpoint was trained on")  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint to stamp")
    args = parser.parse_args(argv)
    from msrg.checkpoint import CheckpointError, load_checkpoint

    # "this checkpoint has no record, stamp it" is what this command is about to do: not said.
    logging.getLogger("msrg.checkpoint").setLevel(logging.ERROR)
    try:
        trained_on = load_checkpoint(args.checkpoint).meta.get("data")
        record = stamp(args.checkpoint, args.data)
    except (StampError, DataFormatError, CheckpointError, ModalityRecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trained_on and sorted(map(str, trained_on)) != sorted(map(str, args.data)):
        print(f"note: the checkpoint's meta names its training data {trained_on}; stamped from "
              f"{[str(p) for p in args.data]} (use a set built the same way)")  # fmt: skip
    shares = ", ".join(f"{m} {v:.1%}" for m, v in record["presence"].items())
    print(f"{args.checkpoint}: present in training steps: {shares}; trained: "
          f"{', '.join(record['trained']) or 'none'}")  # fmt: skip
    print(f"live use: {describe_usage(modality_usage(record))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
