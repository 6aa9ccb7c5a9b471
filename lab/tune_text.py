"""python -m lab.tune_text --labels LABELS.csv --out ADAPTER.pt [--encoder minilm|mpnet]

Adapt the sentence encoder (MiniLM by default, or MPNet) to sentiment with low-rank deltas
(msrg.text_adapter), trained on the `train` transcripts of an MMSA label file
(`id,text,label,mode`). A share of the training *videos* (segment ids `VIDEO_N`) is held out to
choose the epoch, so the `dev` fold stays unseen until the MSRG model is selected on it.
Objective: L1 of 3 tanh(w . e + b) against the label, e the L2-normalised mean-pooled sentence
embedding, exactly as the live WordEmbedder computes it.

The adapter then goes into datasets (`python -m lab.reembed_text`) and, with the model trained on
them, into the checkpoint (`python -m lab.train --text-adapter`).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from msrg.metrics import regression_metrics
from msrg.text_adapter import adapter_from, insert_low_rank
from msrg.text_encoders import DEFAULT_ENCODER, ENCODERS, text_encoder
from msrg.text_form import transcript_form

log = logging.getLogger("lab.tune_text")


@dataclass(frozen=True)
class TuneOptions:
    rank: int = 8
    alpha: float = 16.0
    layers: tuple[int, ...] | None = None  # None: every block of the encoder
    encoder: str = DEFAULT_ENCODER
    epochs: int = 12
    lr: float = 1e-3
    head_lr: float = 1e-2
    batch_size: int = 32
    holdout: float = 0.15  # share of training videos kept for choosing the epoch
    seed: int = 0
    max_tokens: int = 128


def _video(segment_id: str) -> str:
    return segment_id.rsplit("_", 1)[0] if "_" in segment_id else segment_id


def split_holdout(rows: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split training rows by video so no speaker is on both sides."""
    videos = sorted({_video(r["id"]) for r in rows})
    random.Random(seed).shuffle(videos)
    held = set(videos[: max(1, round(share * len(videos)))])
    return [r for r in rows if _video(r["id"]) not in held], [
        r for r in rows if _video(r["id"]) in held
    ]


class SentenceRegressor(torch.nn.Module):
    def __init__(self, transformer: torch.nn.Module, tokenizer, max_tokens: int) -> None:  # noqa: ANN001
        super().__init__()
        self.bert = transformer
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.head = torch.nn.Linear(transformer.config.hidden_size, 1)

    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        hidden = self.bert(**batch).last_hidden_state  # (B, T, H)
        keep = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return 3.0 * torch.tanh(self.head(self.embed(texts)).squeeze(-1))


def _predict(model: SentenceRegressor, texts: list[str], batch: int = 128) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(texts[i : i + batch]).numpy() for i in range(0, len(texts), batch)]
        )


def tune(
    train: list[dict], held: list[dict], options: TuneOptions, progress: bool = True
) -> tuple[dict, dict]:
    """Returns (adapter, history). The adapter is from the epoch with the best held-out MAE."""
    from realtime.extractors.words import WordEmbedder, WordEmbedderOptions

    torch.manual_seed(options.seed)
    encoder = text_encoder(options.encoder)
    # Loaded exactly as live, on PyTorch (live runs an ONNX export of the merged result).
    st = WordEmbedder(WordEmbedderOptions(encoder=encoder.name, backend="torch"))._model
    transformer = st[0]
    model = SentenceRegressor(transformer.auto_model, transformer.tokenizer, options.max_tokens)
    layers = list(encoder.all_layers if options.layers is None else options.layers)
    wrapped = insert_low_rank(model.bert, options.rank, options.alpha, layers, encoder)
    lora = [p for m in wrapped.values() for p in (m.lora_a, m.lora_b)]
    opt = torch.optim.AdamW(
        [
            {"params": lora, "lr": options.lr},
            {"params": model.head.parameters(), "lr": options.head_lr},
        ],
        weight_decay=0.01,
    )
    # The encoder reads words in its training transcripts' form, live and here (msrg.text_form).
    texts = [transcript_form(r["text"]) for r in train]
    labels = torch.tensor([float(r["label"]) for r in train])
    held_texts = [transcript_form(r["text"]) for r in held]
    held_y = np.array([float(r["label"]) for r in held])
    best = (float("inf"), None, -1)
    history = []
    gen = torch.Generator().manual_seed(options.seed)
    for epoch in range(options.epochs):
        model.train()
        t0, total = time.time(), 0.0
        order = torch.randperm(len(texts), generator=gen)
        for i in range(0, len(texts), options.batch_size):
            idx = order[i : i + options.batch_size]
            pred = model([texts[j] for j in idx])
            loss = torch.nn.functional.l1_loss(pred, labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        m = regression_metrics(_predict(model, held_texts), held_y)
        row = {"epoch": epoch, "train_l1": total / len(texts), "seconds": time.time() - t0,
               "held_mae": m["mae"], "held_corr": m["corr"], "held_acc2": m["acc2_non0"]}  # fmt: skip
        history.append(row)
        if progress:
            print(
                f"epoch {epoch}: train L1 {row['train_l1']:.3f}  held-out MAE {m['mae']:.3f} "
                f"Corr {m['corr']:.3f} Acc-2 {100 * m['acc2_non0']:.1f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
        if m["mae"] < best[0]:
            meta = {"options": asdict(options), "epoch": epoch, "held_out": row,
                    "train_segments": len(train), "held_out_segments": len(held)}  # fmt: skip
            best = (m["mae"], adapter_from(wrapped, meta, encoder), epoch)
    assert best[1] is not None
    return best[1], {"history": history, "best_epoch": best[2]}


def recognised_rows(path: Path, true_rows: dict[str, dict]) -> list[dict]:
    """Training rows from a dataset's recognised transcripts (`asr_text` of its train split), with
    the labels of the label file; rows whose recognised text equals the true text add nothing."""
    with open(path, "rb") as f:
        split = pickle.load(f)["train"]
    out = []
    for seg_id, text in zip(split["id"], split["asr_text"]):
        row = true_rows.get(str(seg_id))
        text = str(text).strip()
        if row is not None and text and text != row["text"].strip():
            out.append({"id": row["id"], "text": text, "label": row["label"]})
    print(f"{len(out)} recognised transcripts from {path}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.tune_text", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--labels", required=True, type=Path, help="MMSA label.csv (id,text,label,mode)"
    )
    parser.add_argument("--out", required=True, type=Path, help="adapter file to write")
    parser.add_argument("--epochs", type=int, default=TuneOptions.epochs)
    parser.add_argument("--rank", type=int, default=TuneOptions.rank)
    parser.add_argument("--lr", type=float, default=TuneOptions.lr)
    parser.add_argument("--seed", type=int, default=TuneOptions.seed)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--encoder", choices=sorted(ENCODERS), default=DEFAULT_ENCODER,
        help="the sentence encoder to adapt (msrg.text_encoders); the adapter names it",
    )  # fmt: skip
    parser.add_argument(
        "--recognised", type=Path, default=None,
        help="a dataset built with speech recognition (lab.build_dataset without --transcripts): "
             "its train transcripts join the true ones, so the adapter also learns from "
             "recognition errors",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from lab.dataset_builder import DatasetError, read_labels

    try:
        segments, problems = read_labels(args.labels)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"skipped: {p}", file=sys.stderr)
    rows = [
        {"id": s.id, "text": s.text, "label": s.label}
        for s in segments
        if s.split == "train" and s.text.strip()
    ]
    if args.recognised is not None:
        try:
            rows += recognised_rows(args.recognised, {r["id"]: r for r in rows})
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            print(f"error: {args.recognised}: {exc}", file=sys.stderr)
            return 2
    if len(rows) < 20:
        print(
            f"error: {args.labels} has {len(rows)} usable train rows; at least 20 needed",
            file=sys.stderr,
        )
        return 2
    options = TuneOptions(epochs=args.epochs, rank=args.rank, lr=args.lr, seed=args.seed,
                          encoder=args.encoder)  # fmt: skip
    train, held = split_holdout(rows, options.holdout, options.seed)
    print(f"{len(train)} training and {len(held)} held-out segments ({args.labels})")
    adapter, report = tune(train, held, options)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(adapter, args.out)
    print(f"best epoch {report['best_epoch']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
