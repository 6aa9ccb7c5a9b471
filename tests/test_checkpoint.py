import pytest
import torch

from msrg.checkpoint import CheckpointError, check_feature_dims, load_checkpoint, save_checkpoint
from msrg.config import MSRGConfig, preset
from msrg.model import MSRG


def test_round_trip_rebuilds_config_and_weights(tmp_path):
    torch.manual_seed(0)
    config = MSRGConfig(d_model=32, window=6)
    model = MSRG(config).eval()
    model.audio_mean.fill_(0.5)  # normalisation buffers travel with the weights
    path = save_checkpoint(model, tmp_path / "m.pt", {"note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.meta == {"note": "x"}
    x = [torch.randn(1, 7, d) for d in (config.text_dim, config.audio_dim, config.visual_dim)]
    mask = torch.ones(1, 7, 3)
    with torch.no_grad():
        assert torch.equal(model(*x, mask).intensity, loaded.model(*x, mask).intensity)
    assert len(loaded.digest) == 64


def test_wrong_dimensions_give_one_line_error():
    with pytest.raises(CheckpointError) as err:
        check_feature_dims(
            preset("live"), {"text": 768, "audio": 5, "visual": 20}, "checkpoint m.pt", "data.pkl"
        )
    message = str(err.value)
    assert "\n" not in message
    assert "text 384" in message and "text 768" in message and "data.pkl" in message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupted_file_is_refused_clearly(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="unreadable or corrupted"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_foreign_state_dict_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an affect-monitor"):
        load_checkpoint(path)
