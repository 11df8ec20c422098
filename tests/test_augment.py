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


def test_reverberate_adds_a_decaying_tail_of_the_asked_energy_and_nothing_earlier():
    from soundtwin.training.augment import reverberate

    p = torch.zeros(3, 2, 80)
    p[:, :, 10] = 2.0  # an impulse at frame 10 in every band
    out = reverberate(p, np.array([0.4, 0.4, 0.0]), np.array([0.0, 6.0, 0.0]), 0.01)
    assert torch.all(out[:, :, :10] == 0)  # causal
    assert torch.allclose(out[:2, :, 10], torch.full((2, 2), 2.0))  # the direct sound as it was
    tail = out[0, 0, 11:51]
    assert torch.all(tail[1:] < tail[:-1]) and float(tail[-1]) < 1e-3 * float(tail[0])  # 60 dB down in 0.4 s
    # tail energy / direct energy = 10 ** (-DRR / 10): 1 at 0 dB, about 0.251 at 6 dB
    assert abs(float(out[0, 0, 11:].sum()) / 2.0 - 1.0) < 1e-3
    assert abs(float(out[1, 0, 11:].sum()) / 2.0 - 10 ** -0.6) < 1e-3
    assert torch.equal(out[2], p[2])  # RT60 0: no room


def test_augment_reverb_spreads_energy_past_an_onset_and_keeps_padding_zero():
    x = torch.full((2, 8, 60), -30.0)  # near silence (its own tail stays below the log floor)
    x[:, :, 20:25] = 2.0  # a loud burst
    lengths = torch.tensor([60, 40])
    x[1, :, 40:] = 0
    off = dict(noise_prob=0.0, mix_prob=0.0, gain_db=0.0, time_masks=0, freq_masks=0)
    dry, _ = augment_batch(x, lengths, AugmentConfig(**off), np.random.default_rng(0))
    wet, _ = augment_batch(x, lengths, AugmentConfig(**off, reverb_prob=1.0, reverb_rt60=1.0),
                           np.random.default_rng(0), frame_s=0.01)
    assert torch.all(wet[1, :, 40:] == 0)
    assert torch.allclose(wet[:, :, :20], dry[:, :, :20], atol=1e-3)  # nothing before the burst changes
    assert torch.all(wet[:, :, 25:30] > dry[:, :, 25:30] + 1.0)  # its tail lifts the frames after it


def test_reverb_settings_are_checked():
    import pytest
    from soundtwin.errors import ConfigError

    with pytest.raises(ConfigError, match="reverb_prob"):
        AugmentConfig(reverb_prob=1.5)
    with pytest.raises(ConfigError, match="reverb_rt60"):
        AugmentConfig(reverb_rt60=0.0)


def test_eq_curves_are_piecewise_linear_within_the_range_and_differ_between_clips():
    from soundtwin.training.augment import EQ_PIECES, eq_curves

    c = eq_curves(50, 64, 6.0, np.random.default_rng(0))
    assert c.shape == (50, 64) and np.abs(c).max() <= 6.0 and np.abs(c).max() > 4.0
    # straight between knots: the slope changes at most at the inner knots
    bends = (np.abs(np.diff(c, n=2, axis=1)) > 1e-9).sum(1)
    assert bends.max() <= EQ_PIECES[1] and bends.min() >= 1
    assert not np.allclose(c[0], c[1])
    assert eq_curves(2, 2, 6.0, np.random.default_rng(0)).shape == (2, 2)  # fewer bands than knots


def test_augment_eq_colours_each_band_by_a_constant_and_keeps_padding_zero():
    x = torch.randn(3, 16, 40)
    lengths = torch.tensor([40, 25, 40])
    x[1, :, 25:] = 0
    off = dict(noise_prob=0.0, mix_prob=0.0, gain_db=0.0, time_masks=0, freq_masks=0)
    dry, _ = augment_batch(x, lengths, AugmentConfig(**off), np.random.default_rng(0))
    wet, _ = augment_batch(x, lengths, AugmentConfig(**off, eq_db=6.0), np.random.default_rng(0))
    assert torch.all(wet[1, :, 25:] == 0)
    shift = (wet - dry)[:, :, :25] / (np.log(10) / 10)  # dB
    assert torch.allclose(shift, shift[:, :, :1].expand_as(shift), atol=1e-3)  # one gain a band, all frames
    assert float(shift.abs().max()) <= 6.0 + 1e-3 and float(shift[:, :, 0].std()) > 0.5
    assert not torch.allclose(shift[0, :, 0], shift[2, :, 0])  # each clip its own colouring


def test_eq_setting_is_checked():
    import pytest
    from soundtwin.errors import ConfigError

    with pytest.raises(ConfigError, match="augment.eq_db"):
        AugmentConfig(eq_db=-1.0)
