"""The MiniLM sentiment adapter: merging equals the low-rank forward, it travels in checkpoints,
live extraction refuses a mismatched one, and re-embedding a built dataset gives exactly the
features the adapted encoder would have given."""

from __future__ import annotations

import copy
import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lab.reembed_text import Matcher, reembed_split, runs_of
from lab.train import check_data_adapter
from msrg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from msrg.data import DataFormatError, SequenceSet, concat_sets
from msrg.model import MSRG
from msrg.text_adapter import (
    AdapterError,
    adapter_from,
    check_adapter,
    insert_low_rank,
    load_adapter,
    merge_adapter,
)
from realtime.extractors.words import WordEmbedder, WordEmbedderOptions
from realtime.session import SessionError, check_text_adapter
from realtime.types import Word


@pytest.fixture(scope="module")
def adapter(embedder_base: WordEmbedder, random_adapter) -> dict:  # noqa: ANN001
    """A random (non-zero) adapter on layers 4 and 5, as lab.tune_text would write one."""
    return random_adapter(embedder_base, seed=0, rank=4, alpha=8.0, layers=[4, 5])


@pytest.fixture(scope="module")
def embedder_base() -> WordEmbedder:
    return WordEmbedder(WordEmbedderOptions(backend="torch"))  # its PyTorch model is read here


@pytest.fixture(scope="module")
def embedder_adapted(adapter: dict) -> WordEmbedder:
    return WordEmbedder(WordEmbedderOptions(adapter=adapter))


def _mean_pooled(bert: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:  # noqa: ANN001
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    hidden = bert(**batch).last_hidden_state
    keep = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * keep).sum(1) / keep.sum(1), dim=-1)


def test_merged_weights_compute_what_the_low_rank_layers_compute(embedder_base) -> None:
    transformer = embedder_base._model[0]
    wrapped_bert = copy.deepcopy(transformer.auto_model)
    torch.manual_seed(1)
    wrapped = insert_low_rank(wrapped_bert, rank=4, alpha=8.0, layers=[0, 5])
    for m in wrapped.values():
        torch.nn.init.normal_(m.lora_b, std=0.05)
    merged_bert = copy.deepcopy(transformer.auto_model)
    merge_adapter(merged_bert, adapter_from(wrapped, {}))
    texts = ["what a wonderful day", "this was a waste of my time"]
    with torch.no_grad():
        a = _mean_pooled(wrapped_bert, transformer.tokenizer, texts)
        b = _mean_pooled(merged_bert, transformer.tokenizer, texts)
        base = _mean_pooled(transformer.auto_model, transformer.tokenizer, texts)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - base).abs().max() > 1e-2  # the adapter changed something


def test_adapted_embedder_differs_from_base_and_names_its_adapter(
    embedder_base, embedder_adapted, adapter
) -> None:
    a = embedder_base.embed_sentence("I really loved this movie")
    b = embedder_adapted.embed_sentence("I really loved this movie")
    assert abs(float(np.linalg.norm(b)) - 1.0) < 1e-5
    assert np.abs(a - b).max() > 1e-2
    assert embedder_base.adapter_digest == ""
    assert embedder_adapted.adapter_digest == adapter["digest"]


def test_a_tampered_adapter_is_refused(adapter) -> None:
    bad = {**adapter, "factors": dict(adapter["factors"])}
    name = next(iter(bad["factors"]))
    a, b = bad["factors"][name]
    bad["factors"][name] = (a + 1.0, b)
    with pytest.raises(AdapterError, match="digest"):
        check_adapter(bad)
    with pytest.raises(AdapterError, match="format"):
        check_adapter({"factors": {}})


def test_checkpoint_carries_the_adapter(tmp_path, adapter) -> None:
    path = save_checkpoint(MSRG().eval(), tmp_path / "m.pt", text_adapter=adapter)
    loaded = load_checkpoint(path)
    assert loaded.text_adapter["digest"] == adapter["digest"]
    assert load_adapter(path)["digest"] == adapter["digest"]  # a checkpoint serves as a file
    assert load_checkpoint(save_checkpoint(MSRG(), tmp_path / "b.pt")).text_adapter is None
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["text_adapter"]["factors"]))
    payload["text_adapter"]["factors"][name][0].add_(1.0)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="text adapter"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(AdapterError, match="does not exist"):
        load_adapter(tmp_path / "missing.pt")


def test_live_extraction_refuses_another_adapter(adapter, tmp_path) -> None:
    def extractors(digest: str, dim: int = 384):
        words = SimpleNamespace(adapter_digest=digest, dim=dim, description=f"encoder {digest}")
        return SimpleNamespace(words=words)

    check_text_adapter(extractors(adapter["digest"]), adapter, tmp_path / "m.pt")
    check_text_adapter(extractors(""), None, tmp_path / "m.pt")
    with pytest.raises(SessionError, match="trained on all-MiniLM-L6-v2 with sentiment adapter"):
        check_text_adapter(extractors(""), adapter, tmp_path / "m.pt")
    with pytest.raises(SessionError, match=r"trained on all-MiniLM-L6-v2 \(base\)"):
        check_text_adapter(extractors(adapter["digest"]), None, tmp_path / "m.pt")
    with pytest.raises(SessionError, match="base"):  # a base encoder of another width
        check_text_adapter(extractors("", dim=768), None, tmp_path / "m.pt")


def _steps_like_live(embedder: WordEmbedder, utterances: list[str], per_word: list[int]):
    """Text rows as the aligner lays them: per utterance, word i's causal vector held for
    per_word[i] steps, an absent step between utterances. Returns (text, present, transcript)."""
    rows, present, k = [], [], 0
    for utt in utterances:
        words = [Word(w, 0.0, 0.1, 1.0) for w in utt.split()]
        for ew in embedder.embed_words(words):
            for _ in range(per_word[k % len(per_word)]):
                rows.append(ew.embedding)
                present.append(1.0)
            k += 1
        rows.append(np.zeros_like(rows[-1]))
        present.append(0.0)
    return np.stack(rows), np.asarray(present, np.float32), " ".join(utterances)


def test_reembedding_gives_what_the_adapted_encoder_gives(embedder_base, embedder_adapted) -> None:
    segments = [
        (["it was good", "really good actually"], [1, 3, 2]),
        (["no no no", "I hated it"], [2, 1]),  # repeated words: spans must follow the order
        (["one long sentence about a film that I did not enjoy at all"], [1]),
    ]
    base, adapted, transcripts = [], [], []
    for utterances, per_word in segments:
        t, present, transcript = _steps_like_live(embedder_base, utterances, per_word)
        ta, _, _ = _steps_like_live(embedder_adapted, utterances, per_word)
        base.append((t, present))
        adapted.append(ta)
        transcripts.append(transcript)
    steps = max(len(t) for t, _ in base)

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, [(0, steps - len(a))] + [(0, 0)] * (a.ndim - 1))

    split = {
        "text": np.stack([pad(t) for t, _ in base]),
        "mask": np.stack([pad(np.stack([p, p, p], 1)) for _, p in base]),
        "valid": np.stack([pad(np.ones(len(t), np.float32)) for t, _ in base]),
        "id": ["a_1", "b_1", "c_1"],
        "asr_text": transcripts,
        "regression_labels": np.zeros(3, np.float32),
    }
    problems = reembed_split(split, Matcher(embedder_base._embed_texts),
                             embedder_adapted._embed_texts, "d1")  # fmt: skip
    assert problems == []
    assert split["text_adapter"] == "d1"
    for i, ta in enumerate(adapted):
        np.testing.assert_allclose(split["text"][i, : len(ta)], ta, atol=2e-5)


def test_an_unmatched_segment_is_dropped_and_named(embedder_base, embedder_adapted) -> None:
    t, present, _ = _steps_like_live(embedder_base, ["a happy ending"], [2])
    split = {
        "text": t[None], "mask": np.stack([present] * 3, 1)[None], "valid": np.ones((1, len(t))),
        "id": ["x_1"], "asr_text": ["completely different words"],
        "regression_labels": np.zeros(1, np.float32),
    }  # fmt: skip
    problems = reembed_split(split, Matcher(embedder_base._embed_texts),
                             embedder_adapted._embed_texts, "d1")  # fmt: skip
    assert len(problems) == 1 and problems[0].startswith("x_1")
    assert len(split["text"]) == 0 and split["id"] == []


def test_runs_split_on_changes_and_absence() -> None:
    text = np.array([[1.0], [1.0], [2.0], [0.0], [2.0]], np.float32)
    present = np.array([1, 1, 1, 0, 1], np.float32)
    assert runs_of(text, present) == [(0, 2), (2, 3), (4, 5)]


def _set(adapter: str) -> SequenceSet:
    z = np.zeros((1, 2, 3), np.float32)
    return SequenceSet(z, z, z, z, z[..., 0], np.zeros(1, np.float32), ["a"], [""], adapter)


def test_training_data_and_adapter_must_agree() -> None:
    check_data_adapter({"train": _set("d1"), "valid": _set("d1")}, "d1", "data.pkl")
    with pytest.raises(DataFormatError, match="--text-adapter"):
        check_data_adapter({"train": _set("d1")}, "", "data.pkl")
    with pytest.raises(DataFormatError, match="different adapters"):
        concat_sets([_set("d1"), _set("")])


def test_tune_text_writes_a_loadable_adapter(tmp_path) -> None:
    from lab.tune_text import main

    labels = tmp_path / "label.csv"
    good = ["I loved it", "great fun", "wonderful acting", "a joy to watch", "brilliant"]
    bad = ["I hated it", "boring", "awful acting", "a waste of time", "terrible"]
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label", "mode"])
        for v in range(6):
            for i, text in enumerate(good + bad):
                w.writerow([f"v{v}_{i}", text, 2.0 if i < 5 else -2.0, "train"])
    out = tmp_path / "adapter.pt"
    assert main(["--labels", str(labels), "--out", str(out), "--epochs", "1", "--rank", "2"]) == 0
    adapter = load_adapter(out)
    assert adapter["meta"]["train_segments"] + adapter["meta"]["held_out_segments"] == 60
    assert len(adapter["factors"]) == 6 * 6  # six linear layers in each of six blocks


def test_recognised_transcripts_join_with_the_true_labels(tmp_path) -> None:
    import pickle

    from lab.tune_text import recognised_rows

    data = {"train": {"id": ["v1_1", "v1_2", "v2_1", "zz_9"],
                      "asr_text": ["I loved it", "great fun", "", "unknown id"]}}  # fmt: skip
    path = tmp_path / "asr.pkl"
    path.write_bytes(pickle.dumps(data))
    true_rows = {
        "v1_1": {"id": "v1_1", "text": "I love it", "label": 2.0},
        "v1_2": {"id": "v1_2", "text": "great fun", "label": 1.0},  # same words: nothing new
        "v2_1": {"id": "v2_1", "text": "bad", "label": -2.0},  # nothing recognised
    }
    rows = recognised_rows(path, true_rows)
    assert rows == [{"id": "v1_1", "text": "I loved it", "label": 2.0}]


def test_reembedding_with_a_wider_encoder_widens_the_text_block(embedder_base) -> None:
    """A MiniLM build re-embedded with MPNet (768-d): each run gets MPNet's vector of its span,
    and steps without words stay zero in the new width."""
    mpnet = WordEmbedder(WordEmbedderOptions(encoder="mpnet"))
    utterances, per_word = ["it was good", "not for me"], [2, 1, 3]
    t, present, transcript = _steps_like_live(embedder_base, utterances, per_word)
    wide, _, _ = _steps_like_live(mpnet, utterances, per_word)
    split = {
        "text": t[None], "mask": np.stack([present] * 3, 1)[None],
        "valid": np.ones((1, len(t)), np.float32), "id": ["w_1"], "asr_text": [transcript],
        "regression_labels": np.zeros(1, np.float32),
    }  # fmt: skip
    problems = reembed_split(split, Matcher(embedder_base._embed_texts), mpnet._embed_texts,
                             "d2", dim=mpnet.dim)  # fmt: skip
    assert problems == [] and split["text"].shape == (1, len(t), 768)
    np.testing.assert_allclose(split["text"][0], wide, atol=2e-5)
    assert not split["text"][0][present == 0].any()
