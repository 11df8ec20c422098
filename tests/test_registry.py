"""Adding an encoder or a loss is one module plus one registry line: this module is both, for a
mean-pooling encoder and a centroid loss, and they train, save, load and export like the built-in ones."""

import numpy as np
import torch
from torch import nn

from soundtwin.config import load_config
from soundtwin.encoders import ENCODERS, EncoderSpec
from soundtwin.runtime.torch_runtime import Verifier
from soundtwin.training import train
from soundtwin.training.losses import LOSSES, LossSpec


class MeanPool(nn.Module):
    """A linear map of the mean feature vector over valid frames."""

    def __init__(self, n_features: int, width: int):
        super().__init__()
        self.fc = nn.Linear(n_features, width)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(feats.shape[-1])[None, :] < lengths[:, None]).to(feats.dtype)[:, None, :]
        return self.fc((feats * mask).sum(-1) / mask.sum(-1))


class CentroidLoss(nn.Module):
    """Pulls each embedding toward its class's batch mean (cosine)."""

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        e = nn.functional.normalize(emb, dim=-1)
        out = []
        for c in labels.unique():
            centre = nn.functional.normalize(e[labels == c].mean(0), dim=-1)
            out.append(1 - e[labels == c] @ centre)
        return torch.cat(out).mean()


def build(cfg, *args):  # the encoder's build(cfg) and the loss's build(cfg, num_classes, width)
    return CentroidLoss() if args else MeanPool(cfg.features.n_features, cfg.model.embedding_dim)


def test_a_registered_encoder_and_loss_train_save_and_load(synth_data, tmp_path, monkeypatch):
    monkeypatch.setitem(ENCODERS, "meanpool", EncoderSpec(__name__, lambda c: c.model.embedding_dim))
    monkeypatch.setitem(LOSSES, "centroid", LossSpec(__name__))
    cfg = load_config("default", overrides=["model.name=meanpool", "loss.name=centroid", "model.embedding_dim=16",
                                            "train.epochs=3", "train.crop_max_s=1.0"])
    res = train(synth_data / "train", tmp_path / "m", cfg, cache_dir=tmp_path / "c")
    assert res.history[-1].loss < res.history[0].loss
    v = Verifier.load(tmp_path / "m", cache_dir=tmp_path / "c")
    assert isinstance(v.encoder, MeanPool)
    clips = sorted((synth_data / "test").rglob("*.wav"))[:3]
    e = v.embed(clips)
    assert e.shape == (3, 16) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(e, res.verifier.embed(clips), atol=1e-6)  # the saved model is the trained one


def test_an_unregistered_name_is_refused_with_the_registered_ones():
    import pytest

    from soundtwin.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.name: 'meanpool' is not one of tdnn, mlp"):
        load_config("default", overrides=["model.name=meanpool"])
    with pytest.raises(ConfigError, match=r"loss.name: 'centroid' is not one of contrastive, triplet, aam"):
        load_config("default", overrides=["loss.name=centroid"])
