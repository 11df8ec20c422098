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
    loss = build_loss(cfg, 5)
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
    loss = build_loss(cfg, 4)
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
