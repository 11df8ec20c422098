import numpy as np
import pytest
import torch

from soundtwin.config import load_config
from soundtwin.training.losses import build_loss
from soundtwin.training.losses.contrastive import ContrastiveLoss
from soundtwin.training.losses.triplet import TripletLoss


def test_contrastive_loss_matches_plain_loop():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    y = np.array([1, 0, 1, 0, 0, 1], dtype=np.float32)
    expect = 0.0
    for k in range(6):
        d = np.sqrt(max(np.sum((a[k] - b[k]) ** 2), 1e-7))
        expect += y[k] * d**2 + (1 - y[k]) * max(1 - d, 0) ** 2
    got = ContrastiveLoss(1.0)(torch.tensor(a), torch.tensor(b), torch.tensor(y))
    assert abs(float(got) - expect / 6) < 1e-6


@pytest.mark.parametrize("name", ["aam", "subcenter_aam", "triplet", "supcon"])
def test_class_losses_build_and_backprop(name):
    cfg = load_config("default", overrides=["model.embedding_dim=16", f"loss.name={name}"])
    loss = build_loss(cfg, [str(i) for i in range(5)])
    emb = torch.nn.functional.normalize(torch.randn(20, 16), dim=-1).requires_grad_()
    out = loss(emb, torch.arange(20) % 5)
    out.backward()
    assert out.item() > 0 and emb.grad is not None and emb.grad.abs().sum() > 0


def test_triplet_loss_matches_a_plain_loop_over_semihard_triplets():
    # hand-placed 2-D embeddings (unit vectors at these angles, degrees) with two classes
    angles = np.radians([0, 20, 35, 50, 90, 120])
    emb = np.stack([np.cos(angles), np.sin(angles)], 1)
    labels = np.array([0, 0, 1, 0, 1, 1])
    margin = 0.3
    sim = emb @ emb.T
    losses = []
    for a in range(6):
        for p in range(6):
            if p == a or labels[p] != labels[a]:
                continue
            for n in range(6):
                if labels[n] == labels[a]:
                    continue
                gap = sim[a, p] - sim[a, n]  # semi-hard: the negative is farther, but within the margin
                if 0 < gap <= margin:
                    losses.append(max(sim[a, n] - sim[a, p] + margin, 0.0))
    expect = np.mean([x for x in losses if x > 0])
    got = TripletLoss(margin)(torch.tensor(emb, dtype=torch.float64), torch.tensor(labels))
    assert len(losses) >= 3 and float(got) == pytest.approx(expect, rel=1e-6)


def test_contrastive_pulls_genuine_and_pushes_impostors_within_the_margin():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.3, 0.4], [0.3, 0.4]])  # distance 0.5
    genuine = ContrastiveLoss(1.0)(a, b, torch.tensor([1.0, 1.0]))
    impostor = ContrastiveLoss(1.0)(a, b, torch.tensor([0.0, 0.0]))
    far = ContrastiveLoss(1.0)(a, 3 * b, torch.tensor([0.0, 0.0]))  # distance 1.5, beyond the margin
    assert float(genuine) == pytest.approx(0.25) and float(impostor) == pytest.approx(0.25) and float(far) == 0.0


def test_supcon_loss_matches_a_plain_loop_and_prefers_views_that_agree():
    """SupCon (NT-Xent when every class is one clip seen twice): for each anchor, minus the mean over its
    positives of log(exp(s_ap / T) / sum over every other clip of exp(s_ax / T)), averaged over anchors."""
    cfg = load_config("default", overrides=["model.embedding_dim=8", "loss.name=supcon", "loss.scale=10"])
    loss = build_loss(cfg, [str(i) for i in range(4)])
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((8, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    s = emb @ emb.T / 0.1
    per = []
    for i in range(8):
        others = [j for j in range(8) if j != i]
        logz = np.log(np.sum(np.exp(s[i, others])))
        per.append(-np.mean([s[i, p] - logz for p in others if y[p] == y[i]]))
    got = loss(torch.tensor(emb), torch.tensor(y))
    assert abs(float(got) - np.mean(per)) < 1e-4
    twins = np.repeat(emb[::2], 2, axis=0)  # each clip's two views embedded alike: a lower loss
    assert float(loss(torch.tensor(twins), torch.tensor(y))) < float(got)


def _targets_file(path, names, dim=6, seed=0):
    from soundtwin.training.losses.teacher import save_targets

    g = torch.Generator().manual_seed(seed)
    t = {n: torch.randn(dim, generator=g) for n in names}
    save_targets(path, t, {"teacher": "test"})
    return t


def test_distillation_targets_come_in_the_training_classes_order_and_a_missing_class_is_named(tmp_path):
    from soundtwin.errors import ModelError
    from soundtwin.training.losses.teacher import load_targets

    t = _targets_file(tmp_path / "t.safetensors", ["hum", "knock", "whistle"])
    got = load_targets(tmp_path / "t.safetensors", ["whistle", "hum"])
    assert got.shape == (2, 6) and torch.allclose(got.norm(dim=1), torch.ones(2))
    assert torch.allclose(got[0], torch.nn.functional.normalize(t["whistle"], dim=0))
    with pytest.raises(ModelError, match=r"t\.safetensors has no target for 1 training class.*'hiss'"):
        load_targets(tmp_path / "t.safetensors", ["hum", "hiss"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a targets file")
    with pytest.raises(ModelError, match=r"cannot read targets file .*bad\.safetensors"):
        load_targets(tmp_path / "bad.safetensors", ["hum"])


def test_distillation_adds_a_head_that_learns_each_class_target_and_weight_zero_is_the_base_loss(tmp_path):
    _targets_file(tmp_path / "t.safetensors", ["a", "b", "c", "d"])
    over = ["model.embedding_dim=8", "loss.name=supcon", f"loss.teacher={tmp_path / 't.safetensors'}"]
    classes = ["a", "b", "c", "d"]
    g = torch.Generator().manual_seed(1)
    y = torch.arange(16) % 4
    emb = torch.nn.functional.normalize(torch.randn(4, 8, generator=g)[y] + 0.05 * torch.randn(16, 8, generator=g), dim=1)
    plain = build_loss(load_config("default", overrides=over[:2]), classes)
    off = build_loss(load_config("default", overrides=over + ["loss.teacher_weight=0"]), classes)
    assert off(emb, y).item() == pytest.approx(plain(emb, y).item(), rel=1e-6)
    loss = build_loss(load_config("default", overrides=over + ["loss.teacher_weight=1"]), classes)
    assert "targets" not in loss.state_dict() and set(loss.state_dict()) == {"head.weight", "head.bias"}
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    first = loss(emb, y).item() - plain(emb, y).item()
    for _ in range(300):
        opt.zero_grad()
        loss(emb, y).backward()
        opt.step()
    cos = (torch.nn.functional.normalize(loss.head(emb), dim=1) * loss.targets[y]).sum(1)
    assert first > 0.5 and cos.min().item() > 0.95  # 4 clusters of 8-d embeddings: a linear map fits their targets


def test_a_projection_head_is_what_the_class_loss_sees_and_is_trained_with_it():
    """``loss.projection``: the class loss scores ``head(emb)`` (Linear, BatchNorm, ReLU, Linear back to the
    embedding width), and the head's weights are the objective's, so the optimiser trains them."""
    from soundtwin.errors import ConfigError

    over = ["model.embedding_dim=8", "loss.name=supcon"]
    classes = ["a", "b", "c", "d"]
    g = torch.Generator().manual_seed(2)
    y = torch.arange(16) % 4
    emb = torch.randn(16, 8, generator=g)
    plain = build_loss(load_config("default", overrides=over), classes)
    loss = build_loss(load_config("default", overrides=over + ["loss.projection=32"]), classes)
    assert {k.split(".")[0] for k in loss.state_dict()} == {"head"}
    assert loss.head[0].weight.shape == (32, 8) and loss.head[-1].weight.shape == (8, 32)
    assert loss(emb, y).item() == pytest.approx(plain(loss.head(emb), y).item(), rel=1e-6)
    assert abs(loss(emb, y).item() - plain(emb, y).item()) > 1e-3
    opt = torch.optim.Adam(loss.parameters(), lr=0.01)  # the embeddings stay fixed: only the head learns
    first = loss(emb, y).item()
    for _ in range(200):
        opt.zero_grad()
        loss(emb, y).backward()
        opt.step()
    assert loss(emb, y).item() < 0.5 * first
    with pytest.raises(ConfigError, match="loss.projection: a projection head needs a class loss"):
        load_config("default", overrides=["loss.name=contrastive", "loss.projection=32"])
    with pytest.raises(ConfigError, match="loss.projection"):
        load_config("default", overrides=["loss.projection=-1"])


def test_distillation_needs_a_class_loss():
    from soundtwin.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.teacher: distillation needs a class loss"):
        load_config("default", overrides=["loss.name=contrastive", "loss.teacher=t.safetensors"])
