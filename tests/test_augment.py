import numpy as np
import torch

from soundtwin.training.augment import augment_batch, stretch_time, warp_frequency
from soundtwin.config import AugmentConfig


def test_warp_identity_and_direction():
    x = torch.zeros(2, 10, 5)
    x[:, 6] = 1.0  # energy in mel band 6
    same = warp_frequency(x, np.array([1.0, 1.0]))
    assert torch.equal(same, x)
    up = warp_frequency(x, np.array([1.5, 0.75]))  # factor > 1 reads higher bands: energy moves down
    assert int(up[0].sum(-1).argmax()) == 4 and int(up[1].sum(-1).argmax()) == 8


def test_stretch_scales_lengths():
    x = torch.randn(3, 4, 100)
    y, lengths = stretch_time(x, torch.tensor([100, 50, 10]), 1.2)
    assert y.shape == (3, 4, 120) and lengths.tolist() == [120, 60, 12]


def test_augment_keeps_padding_zero_and_changes_valid_part():
    rng = np.random.default_rng(0)
    x = torch.randn(4, 16, 30)
    lengths = torch.tensor([30, 20, 10, 5])
    x[1, :, 20:] = 0
    cfg = AugmentConfig(noise_prob=1.0, mix_prob=1.0, freq_warp=0.1, time_stretch=0.0)
    y, new_lengths = augment_batch(x, lengths, cfg, rng)
    assert y.shape == x.shape and torch.equal(new_lengths, lengths)
    assert torch.all(y[1, :, 20:] == 0) and torch.all(y[3, :, 5:] == 0)
    assert not torch.allclose(y[0], x[0])
    # noise only adds energy: the mean log-energy of a clip does not drop (before masking)
    cfg2 = AugmentConfig(noise_prob=1.0, mix_prob=0.0, gain_db=0.0, time_masks=0, freq_masks=0)
    z, _ = augment_batch(x, lengths, cfg2, np.random.default_rng(1))
    assert float(z[0].mean()) >= float(x[0].mean())
