"""Train MSRG on an MMSA-format pickle: select on `valid`, report `test`, write a checkpoint and a
JSON of metrics.

    python -m lab.train --data FILE.pkl --preset mosi --out runs/mosi.pt

Loss: L1 (or MSE) of the SIM final intensity against the utterance label, plus `aux_weight` times
the time-step term (`aux_target`: `mean`, the loss of the mean step intensity; `progressive`, every
speech step against the label with weights growing with how much of the utterance was heard,
msrg/step_loss.py), plus `smooth_weight` times the mean |change| between consecutive speech steps.
The step terms keep every step's intensity on the label's scale, so the live curve and the
utterance result read in the same units.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from msrg.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    check_feature_dims,
    load_checkpoint,
    save_checkpoint,
)
from msrg.config import MODALITIES, MSRGConfig, preset
from msrg.curve import curve_metrics, format_curve_table, speech_curves
from msrg.data import DataFormatError, SequenceSet, concat_sets, load_mmsa
from msrg.metrics import format_table, json_safe, regression_metrics
from msrg.modalities import modality_record
from msrg.model import MSRG
from msrg.step_loss import (
    AUX_TARGETS,
    mean_step_loss,
    progressive_loss,
    smoothness_loss,
    speech_steps,
)
from msrg.text_adapter import AdapterError, adapter_digest, load_adapter

log = logging.getLogger("lab.train")


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 21
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.0
    # L2 on ULF alone: its input is ~1.2k pooled features per utterance learnt from ~1.3k
    # utterances, where an unpenalised layer memorises the training set (train Corr 0.95, dev
    # 0.63); the recurrent step path keeps `weight_decay`.
    ulf_weight_decay: float = 0.0
    loss: str = "l1"  # l1 | mse
    aux_weight: float = 0.5  # weight of the time-step auxiliary loss (0 disables it)
    aux_target: str = "mean"  # mean | progressive (msrg/step_loss.py)
    aux_power: float = 1.0  # p of the progressive weights (t / T_u)^p
    smooth_weight: float = 0.0  # weight of the within-utterance smoothness of speech steps
    grad_clip: float = 0.6
    patience: int = 8  # epochs without a better valid MAE before stopping
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch size must be >= 1 and lr > 0")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"loss must be l1 or mse, got {self.loss!r}")
        if self.aux_target not in AUX_TARGETS:
            raise ValueError(f"aux target must be one of {AUX_TARGETS}, got {self.aux_target!r}")
        if self.aux_power < 0 or self.smooth_weight < 0 or self.aux_weight < 0:
            raise ValueError("aux weight, aux power and smooth weight must be >= 0")


CLI_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "ulf_weight_decay", "aux_weight",
              "aux_target", "aux_power", "smooth_weight", "grad_clip", "patience", "seed",
              "threads", "loss")  # fmt: skip


@dataclass
class TrainResult:
    model: MSRG
    best_epoch: int
    history: list[dict[str, float]]
    metrics: dict[str, dict[str, float]]  # split -> metric -> value


def fit_normalisation(model: MSRG, data: SequenceSet) -> None:
    """Per-feature mean/std over present, valid training steps, stored as model buffers."""
    arrays = (data.text, data.audio, data.visual)
    for i, (name, x) in enumerate(zip(MODALITIES, arrays)):
        w = (data.valid * data.mask[:, :, i]).reshape(-1) > 0
        rows = x.reshape(-1, x.shape[-1])[w]
        if len(rows) < 2:
            continue
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std[std < 1e-6] = 1.0  # constant features stay as they are
        getattr(model, f"{name}_mean").copy_(torch.from_numpy(mean.astype(np.float32)))
        getattr(model, f"{name}_std").copy_(torch.from_numpy(std.astype(np.float32)))


def _tensors(data: SequenceSet, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The batch `idx`, cut after its longest sequence: padding is at the end and every layer is
    causal, so trailing padding cannot change a valid step, and it would cost time."""
    valid = data.valid[idx]
    real = np.nonzero(valid.any(axis=0))[0]
    steps = int(real[-1]) + 1 if len(real) else 1
    seq = tuple(
        torch.from_numpy(np.ascontiguousarray(a[idx, :steps]))
        for a in (data.text, data.audio, data.visual, data.mask, data.valid)
    )
    return (*seq, torch.from_numpy(data.labels[idx]))


def _batches(data: SequenceSet, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (sorted within chunks of 50 batches) so that little
    padding is computed; the batch order is shuffled again."""
    order = rng.permutation(len(data))
    lengths = data.valid.sum(axis=1)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def predict(model: MSRG, data: SequenceSet, batch_size: int = 128) -> dict:
    """Utterance-level predictions of a whole set: final, utterance (ULF) and time-step summary,
    and `curves`, each utterance's intensities at its speech steps (msrg/curve.py).
    Batches group similar lengths (less padding); results come back in the set's order."""
    model.eval()
    outs = {k: np.empty(len(data), np.float32) for k in ("final", "utterance", "timestep")}
    curves: list[np.ndarray] = [np.empty(0)] * len(data)
    by_length = np.argsort(data.valid.sum(axis=1), kind="stable")
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = by_length[start : start + batch_size]
            text, audio, visual, mask, valid, _ = _tensors(data, idx)
            seq = model(text, audio, visual, mask)
            utt = model.utterance(text, audio, visual, mask, valid, seq.intensity, seq.salience)
            outs["final"][idx] = utt.final_intensity.numpy()
            outs["utterance"][idx] = utt.utterance_intensity.numpy()
            outs["timestep"][idx] = utt.timestep_intensity.numpy()
            speech = speech_steps(mask, valid).numpy()
            for i, curve in zip(idx, speech_curves(seq.intensity.numpy(), speech)):
                curves[i] = curve
    return {**outs, "curves": curves}


def step_terms(
    intensity: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor,
    options: TrainOptions,
) -> torch.Tensor:  # fmt: skip
    """The time-step part of the loss: aux_weight x (mean or progressive) + smooth_weight x
    smoothness. intensity, valid (B, T), mask (B, T, 3), labels (B,)."""
    total = intensity.new_zeros(())
    speech = speech_steps(mask, valid)
    if options.aux_weight > 0:
        if options.aux_target == "mean":
            aux = mean_step_loss(intensity, valid, labels, options.loss)
        else:
            aux = progressive_loss(intensity, speech, labels, options.aux_power, options.loss)
        total = total + options.aux_weight * aux
    if options.smooth_weight > 0:
        total = total + options.smooth_weight * smoothness_loss(intensity, speech)
    return total


def train(
    config: MSRGConfig, splits: dict[str, SequenceSet], options: TrainOptions,
    init: MSRG | None = None,
) -> TrainResult:  # fmt: skip
    """Train on splits["train"], keep the epoch with the lowest SIM MAE on splits["valid"].

    init: a trained model to continue from (fine-tuning). Its weights and its feature
    normalisation are kept (the weights were learned on that scale), and it is scored on valid as
    epoch 0: when no epoch beats it, the result is the model it started from."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    train_set, valid_set = splits["train"], splits["valid"]
    model = MSRG(config)
    if init is None:
        fit_normalisation(model, train_set)
    else:
        if init.config != config:
            raise ValueError("the model to continue from has another architecture than config")
        model.load_state_dict(init.state_dict())
    ulf = [p for n, p in model.named_parameters() if n.startswith("ulf_")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("ulf_")]
    opt = torch.optim.Adam(
        [{"params": rest, "weight_decay": options.weight_decay},
         {"params": ulf, "weight_decay": options.ulf_weight_decay}],
        lr=options.lr,
    )  # fmt: skip
    loss_fn = torch.nn.L1Loss() if options.loss == "l1" else torch.nn.MSELoss()
    best_mae, best_epoch, best_state = math.inf, -1, None
    history = []

    def scored() -> dict[str, float]:  # SIM's final on valid (predict() leaves eval mode on)
        return regression_metrics(predict(model, valid_set)["final"], valid_set.labels)

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    if init is not None:
        start = scored()
        history.append({"epoch": 0, **{f"valid_{k}": v for k, v in start.items()}})
        log.info("epoch 0 (the model continued from): valid MAE %.4f", start["mae"])
        best_mae, best_epoch, best_state = start["mae"], 0, snapshot()
    for epoch in range(1, options.epochs + 1):
        model.train()
        bar = tqdm(
            _batches(train_set, options.batch_size, rng),
            desc=f"epoch {epoch}/{options.epochs}",
            leave=False,
            disable=not options.progress,
        )
        total, count = 0.0, 0
        for idx in bar:
            text, audio, visual, mask, valid, labels = _tensors(train_set, idx)
            seq = model(text, audio, visual, mask)
            utt = model.utterance(text, audio, visual, mask, valid, seq.intensity, seq.salience)
            loss = loss_fn(utt.final_intensity, labels) + step_terms(
                seq.intensity, mask, valid, labels, options
            )
            opt.zero_grad()
            loss.backward()
            if options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
            bar.set_postfix(loss=f"{total / count:.3f}")
        valid_metrics = scored()
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / count,
                **{f"valid_{k}": v for k, v in valid_metrics.items()},
            }
        )
        log.info("epoch %d: train loss %.4f, valid MAE %.4f, Acc-2 %.3f", epoch, total / count,
                 valid_metrics["mae"], valid_metrics["acc2_non0"])  # fmt: skip
        if valid_metrics["mae"] < best_mae:
            best_mae, best_epoch, best_state = valid_metrics["mae"], epoch, snapshot()
        elif epoch - best_epoch >= options.patience:
            log.info("early stop: no better valid MAE for %d epochs", options.patience)
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    metrics = {}
    for name, data in splits.items():
        preds = predict(model, data)
        metrics[name] = regression_metrics(preds["final"], data.labels)
        metrics[f"{name}_ulf_only"] = regression_metrics(preds["utterance"], data.labels)
        metrics[f"{name}_timestep_only"] = regression_metrics(preds["timestep"], data.labels)
        metrics[f"{name}_curve"] = curve_metrics(preds["curves"], preds["final"], data.labels)
    return TrainResult(model, best_epoch, history, metrics)


def check_data_adapter(splits: dict[str, SequenceSet], digest: str, where: str) -> None:
    """The checkpoint must carry the adapter its training text was embedded with."""
    have = {s.text_adapter for s in splits.values()}
    if have != {digest}:
        found = ", ".join(sorted(d or "none" for d in have))
        raise DataFormatError(
            f"{where} embeds text with adapter {found} but --text-adapter gives "
            f"{digest or 'none'}; pass the adapter the data was built or re-embedded with"
        )


def load_splits(paths: list[str], counts: dict | None = None) -> dict[str, SequenceSet]:
    """train and valid (and test where every file has it) of each file, joined split by split.
    counts: filled with each file's name -> split -> rows, as the checkpoint records them."""
    per_file = []
    for path in paths:
        try:
            per_file.append(load_mmsa(path, ("train", "valid", "test")))
        except DataFormatError as exc:
            if "lacks split(s) test" not in str(exc):
                raise
            per_file.append(load_mmsa(path, ("train", "valid")))
            log.info("%s has no test split", path)
    if counts is not None:
        counts.update({Path(p).name: {s: len(d) for s, d in f.items()} for p, f in zip(paths, per_file)})
    names = [s for s in ("train", "valid", "test") if all(s in f for f in per_file)]
    return {name: concat_sets([f[name] for f in per_file]) for name in names}


def _continued_from(
    args: argparse.Namespace, splits: dict[str, SequenceSet], text_adapter: dict | None
) -> tuple[LoadedCheckpoint, dict | None]:
    """The checkpoint --init names, checked against the data and the other flags; and the text
    adapter to store (the checkpoint's: its data must be embedded the same way)."""
    if args.d_model or args.window or args.dropout is not None:
        raise ValueError("--d-model, --window and --dropout cannot change a model given by --init")
    if not args.init.is_file():  # load_checkpoint's own message names --checkpoint
        raise ValueError(f"--init {args.init} does not exist; pass a checkpoint from lab.train")
    init = load_checkpoint(args.init)
    check_feature_dims(init.config, splits["train"].dims, str(args.init), " + ".join(args.data))
    if text_adapter is not None and adapter_digest(text_adapter) != adapter_digest(
        init.text_adapter
    ):
        raise ValueError(f"--text-adapter differs from the adapter {args.init} was trained with")
    return init, init.text_adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--data", required=True, nargs="+",
        help="MMSA-format pickle(s) (train/valid[/test]); several files are joined split by split",
    )  # fmt: skip
    parser.add_argument(
        "--preset", default="mosi",
        help="architecture preset: live, mosi, mosei, or 'data' (live settings, dimensions from the file)",
    )  # fmt: skip
    parser.add_argument("--out", default="runs/msrg.pt", help="checkpoint to write")
    parser.add_argument(
        "--metrics-json", default=None, help="metrics JSON (default: next to --out)"
    )
    defaults = TrainOptions()
    for field in CLI_FIELDS:
        value = getattr(defaults, field)
        kind = type(value) if value is not None else int
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=value)
    parser.add_argument(
        "--d-model", type=int, default=None, help="override the preset's model width"
    )
    parser.add_argument("--window", type=int, default=None, help="override the JCAF window (steps)")
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    parser.add_argument(
        "--init", type=Path, default=None,
        help="a checkpoint to continue training from (fine-tuning): its architecture, feature "
             "normalisation and text adapter are kept; it counts as epoch 0 for selection",
    )  # fmt: skip
    parser.add_argument(
        "--text-adapter", type=Path, default=None,
        help="the encoder adapter (lab.tune_text) the data's text was embedded with; "
             "stored in the checkpoint (it names its encoder) so live extraction embeds text "
             "the same way",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = preset("live" if args.preset == "data" else args.preset)
        if args.d_model:
            config = replace(config, d_model=args.d_model)
        if args.window:
            config = replace(config, window=args.window)
        if args.dropout is not None:
            config = replace(config, dropout=args.dropout)
        options = TrainOptions(**{f: getattr(args, f) for f in CLI_FIELDS})
        sources: dict = {}
        splits = load_splits(args.data, sources)
        text_adapter = load_adapter(args.text_adapter) if args.text_adapter else None
        init = None
        if args.init:  # the architecture is the checkpoint's, whatever the preset says
            init, text_adapter = _continued_from(args, splits, text_adapter)
            config = init.config
        elif args.preset == "data":
            dims = splits["train"].dims
            config = config.with_dims(dims["text"], dims["audio"], dims["visual"])
        if init is None:
            check_feature_dims(
                config, splits["train"].dims, f"preset '{args.preset}'", " + ".join(args.data)
            )
        check_data_adapter(splits, adapter_digest(text_adapter), " + ".join(args.data))
    except (DataFormatError, CheckpointError, AdapterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.time()
    result = train(config, splits, options, init=init.model if init else None)
    out = Path(args.out)
    meta = {
        "data": [str(d) for d in args.data], "sources": sources, "preset": args.preset,
        "options": asdict(options),
        **({"init": {"path": str(init.path), "digest": init.digest}} if init else {}),
        "best_epoch": result.best_epoch, "metrics": json_safe(result.metrics),
        "trained_s": round(time.time() - started, 1),
        # Which modalities the model learned from; live use masks the others (msrg/modalities.py).
        "modalities": modality_record(splits["train"].mask, splits["train"].valid),
    }  # fmt: skip
    save_checkpoint(result.model, out, meta, text_adapter=text_adapter)
    metrics_path = (
        Path(args.metrics_json) if args.metrics_json else out.with_suffix(".metrics.json")
    )
    metrics_path.write_text(json.dumps(json_safe({**meta, "history": result.history}), indent=2))
    print(format_table({k: v for k, v in result.metrics.items() if "_" not in k}))
    print(format_curve_table({k: v for k, v in result.metrics.items() if k.endswith("_curve")}))
    print(f"checkpoint: {out}\nmetrics: {metrics_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
