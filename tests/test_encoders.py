import pytest
import torch

from soundtwin.config import PRESETS, load_config
from soundtwin.errors import ConfigError
from soundtwin.encoders import build_encoder
from soundtwin.encoders.tdnn import TDNNEncoder


def test_tdnn_ignores_padding_and_accepts_any_length():
    torch.manual_seed(0)
    enc = TDNNEncoder(16, channels=24, embedding_dim=8).eval()
    x = torch.randn(1, 16, 37)
    padded = torch.cat([x, torch.zeros(1, 16, 50)], dim=-1)
    with torch.no_grad():
        a = enc(x, torch.tensor([37]))
        b = enc(padded, torch.tensor([37]))
        c = enc(torch.randn(1, 16, 3))
    # a padded clip embeds exactly as it does alone: what is batched with it does not matter
    assert torch.allclose(a, b, atol=1e-5)
    assert c.shape == (1, 8)


@pytest.mark.parametrize("shape", [False, True])
def test_tdnn_gain_invariant(shape):
    enc = TDNNEncoder(16, channels=24, embedding_dim=8, spectral_shape=shape).eval()
    x = torch.randn(2, 16, 40)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc(x + 3.0), atol=1e-4)  # +3 in log = a gain change


def test_tutorial_network_shape():
    enc = build_encoder(PRESETS["tutorial"])
    kinds = [type(m).__name__ for m in enc.net]
    assert kinds == ["Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU"]
    assert enc.net[1].in_features == 20 * 400 and all(m.out_features == 128 for m in enc.net if hasattr(m, "out_features"))
    assert enc(torch.randn(5, 20, 400)).shape == (5, 128)


def test_strided_dilated_tdnn_handles_short_and_padded_clips():
    torch.manual_seed(0)
    enc = TDNNEncoder(16, channels=24, embedding_dim=8, dilation=2, stride=2).eval()
    x = torch.randn(1, 16, 41)
    with torch.no_grad():
        a = enc(x, torch.tensor([41]))
        b = enc(torch.cat([x, torch.zeros(1, 16, 30)], -1), torch.tensor([41]))
        c = enc(torch.randn(2, 16, 3), torch.tensor([3, 1]))
    assert torch.allclose(a, b, atol=1e-5) and c.shape == (2, 8) and torch.isfinite(c).all()


def test_ensemble_embedding_averages_member_cosines():
    from soundtwin.encoders.ensemble import EnsembleEncoder

    cfg = load_config("default", overrides=["model.ensemble=3", "model.channels=16", "model.embedding_dim=8"])
    torch.manual_seed(0)
    enc = build_encoder(cfg).eval()
    assert isinstance(enc, EnsembleEncoder) and len(enc.members) == 3
    # members start from different weights, or the ensemble would be one model three times
    assert not torch.equal(next(enc.members[0].parameters()), next(enc.members[1].parameters()))
    x, lengths = torch.randn(5, 64, 40), torch.tensor([40, 30, 20, 40, 12])
    with torch.no_grad():
        e = enc(x, lengths)
        members = [torch.nn.functional.normalize(m, dim=-1) for m in enc.member_embeddings(x, lengths)]
    assert e.shape == (5, 24) and torch.allclose(e.norm(dim=-1), torch.ones(5), atol=1e-5)
    mean_cos = sum(m[0] @ m[1] for m in members) / 3
    assert torch.allclose(e[0] @ e[1], mean_cos, atol=1e-5)


def test_ensemble_config_is_checked():
    from soundtwin.errors import ConfigError

    with pytest.raises(ConfigError, match="model.ensemble"):
        load_config("tutorial", overrides=["model.ensemble=2"])
    with pytest.raises(ConfigError, match="model.ensemble"):
        load_config("default", overrides=["model.ensemble=2", "loss.name=contrastive", "model.distance=euclidean"])
    with pytest.raises(ConfigError, match="model.ensemble"):
        load_config("default", overrides=["model.ensemble=0"])


def test_a_frozen_ge2e_trunk_runs_once_per_clip_while_training_with_the_same_result():
    """``ge2e_head`` keeps each clip's frozen GE2E output while training: the second pass over the same
    clips runs no LSTM, and outputs and head gradients equal those computed afresh."""
    import torch

    from soundtwin.encoders.ge2e import GE2E, GE2EHead

    torch.manual_seed(0)
    fresh, memo = GE2EHead(40, 32, 1, 16), GE2EHead(40, 32, 1, 16)
    memo.load_state_dict(fresh.state_dict())
    memo.memo = {}
    x = torch.randn(3, 40, 50)
    lengths = torch.tensor([50, 30, 20])
    runs = []
    orig = GE2E.embed_partials

    def counted(self, m):
        runs.append(m.shape[0])
        return orig(self, m)

    GE2E.embed_partials = counted
    try:
        for _ in range(2):
            for enc in (fresh, memo):
                enc.zero_grad()
                out = enc(x, lengths)
                out.sum().backward()
            torch.testing.assert_close(memo(x, lengths), fresh(x, lengths))
            torch.testing.assert_close(memo.head.weight.grad, fresh.head.weight.grad)
    finally:
        GE2E.embed_partials = orig
    assert len(memo.memo) == 3
    # fresh: 2 passes x (forward + check) = 4 runs; memo: its first forward only
    assert len(runs) == 4 + 1
    memo.load_state_dict(fresh.state_dict())  # other weights: what it kept is dropped
    assert memo.memo == {}


def test_tdnn_with_a_2d_stem_ignores_padding_and_accepts_any_band_count():
    torch.manual_seed(0)
    for bands in (16, 13):  # an odd count: each stem layer halves it, rounding up
        enc = TDNNEncoder(bands, channels=24, embedding_dim=8, stem=4).eval()
        x = torch.randn(1, bands, 37)
        with torch.no_grad():
            a = enc(x, torch.tensor([37]))
            b = enc(torch.cat([x, torch.randn(1, bands, 50)], dim=-1), torch.tensor([37]))  # noise past the end
            c = enc(torch.randn(2, bands, 3), torch.tensor([3, 1]))
            d = enc(x + 3.0, torch.tensor([37]))  # a gain change
        assert torch.allclose(a, b, atol=1e-5) and c.shape == (2, 8) and torch.isfinite(c).all()
        assert torch.allclose(a, d, atol=1e-4)


def test_the_2d_stem_sees_a_pattern_moved_in_pitch_as_the_same_feature_moved():
    """The stem's filters slide along the mel axis: a pattern moved up 4 bands (its two stride-2 layers'
    step) gives the same stem features one output band up, which a 1-D layer over bands does not."""
    from soundtwin.encoders.layers import Stem2d

    torch.manual_seed(0)
    stem = Stem2d(3).eval()
    with torch.no_grad():
        for p in stem.parameters():  # non-trivial batch-norm statistics too
            p.add_(0.1 * torch.randn_like(p))
        stem.bn1.running_mean.normal_()
        stem.bn2.running_mean.normal_()
    x = torch.zeros(1, 32, 20)
    x[0, 8:14, 5:15] = torch.randn(6, 10)  # a patch well inside the band axis
    moved = torch.roll(x, 4, dims=1)
    mask = torch.ones(1, 1, 20, dtype=torch.bool)
    with torch.no_grad():
        a = stem(x, mask).reshape(1, 3, 8, 20)
        b = stem(moved, mask).reshape(1, 3, 8, 20)
    assert stem.out_features(32, 3) == 3 * 8
    assert torch.allclose(a[:, :, 1:6], b[:, :, 2:7], atol=1e-5)  # moved one output band, edges aside
    assert not torch.allclose(a[:, :, 1:6], b[:, :, 1:6], atol=1e-3)  # and not merely unchanged


def test_a_stem_model_exports_to_onnx_with_the_same_embeddings(tmp_path):
    import numpy as np

    from soundtwin.runtime.export import export_onnx
    from soundtwin.runtime.torch_runtime import Verifier

    cfg = load_config("sound", overrides=["model.stem=4", "model.channels=16", "model.embedding_dim=8"])
    torch.manual_seed(0)
    v = Verifier(build_encoder(cfg).eval(), cfg)
    worst = export_onnx(v, tmp_path / "m.onnx", check_clips=[np.random.default_rng(1).standard_normal((64, 77))
                                                             .astype(np.float32)])
    assert worst <= 1e-4 and (tmp_path / "m.onnx").stat().st_size > 0


def test_pcen_matches_librosa_once_its_filter_has_settled():
    """The layer is librosa's ``pcen`` with the same constants: equal once the first frames, where the two
    start their smoothing filters differently (librosa from a power of 1, ours from the first frame's), are
    behind."""
    import librosa
    import numpy as np

    from soundtwin.encoders.layers import PCEN

    rng = np.random.default_rng(0)
    power = (rng.gamma(1.0, 1.0, (8, 400)) * np.exp(rng.normal(0, 2, (8, 1)))).astype(np.float64)
    power[:, 200:230] *= 50.0  # an onset
    layer = PCEN(8, taps=400, s=0.05, alpha=0.9, delta=2.0, r=0.5, eps=1e-8).double()
    with torch.no_grad():
        ours = layer(torch.log(torch.from_numpy(power))[None])[0].numpy()
    ref = librosa.pcen(power, b=0.05, gain=0.9, bias=2.0, power=0.5, eps=1e-8)
    assert np.allclose(ours[:, 200:], ref[:, 200:], rtol=1e-3, atol=1e-6)  # 0.95^200: the start forgotten
    assert ours[:, 200:203].mean() > 4 * ours[:, 150:200].mean()  # the onset stands out of the background


def test_pcen_flattens_a_background_whatever_its_level_and_keeps_the_clip_causal():
    from soundtwin.encoders.layers import PCEN

    torch.manual_seed(0)
    layer = PCEN(4)
    hum = torch.zeros(1, 4, 300)  # a steady background: log-power constant in time
    with torch.no_grad():
        quiet, loud = layer(hum - 6.0), layer(hum + 6.0)  # 52 dB apart
        assert torch.allclose(quiet, quiet[..., :1].expand_as(quiet), atol=1e-5)  # flat from the first frame
        assert (loud - quiet).abs().max() < 0.2  # alpha < 1 leaves a trace of the level (12 in log-mel), no more
        x = torch.randn(1, 4, 50)
        later = layer(torch.cat([x, 5 * torch.randn(1, 4, 30)], dim=-1))[..., :50]
        assert torch.allclose(layer(x), later, atol=1e-6)  # later frames change nothing before them


def test_tdnn_with_pcen_ignores_padding_trains_its_constants_and_exports_to_onnx(tmp_path):
    import numpy as np

    from soundtwin.runtime.export import export_onnx
    from soundtwin.runtime.torch_runtime import Verifier

    torch.manual_seed(0)
    enc = TDNNEncoder(16, channels=24, embedding_dim=8, pcen=True).eval()
    x = torch.randn(1, 16, 37)
    with torch.no_grad():
        a = enc(x, torch.tensor([37]))
        b = enc(torch.cat([x, torch.randn(1, 16, 50)], dim=-1), torch.tensor([37]))
    assert torch.allclose(a, b, atol=1e-5)
    enc.train()
    enc(torch.randn(4, 16, 30)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.pcen.parameters())
    first = enc.layer_groups()[-1]  # the first block's group, for layer-wise rate decay
    assert all(any(p is q for q in first) for p in enc.pcen.parameters())

    cfg = load_config("sound", overrides=["model.pcen=true", "model.channels=16", "model.embedding_dim=8"])
    v = Verifier(build_encoder(cfg).eval(), cfg)
    worst = export_onnx(v, tmp_path / "m.onnx", check_clips=[np.random.default_rng(1).standard_normal((64, 77))
                                                             .astype(np.float32)])
    assert worst <= 1e-4
    with pytest.raises(ConfigError, match="model.pcen needs"):
        load_config("default", overrides=["model.pcen=true", "features.kind=mfcc"])
