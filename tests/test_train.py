import json

import numpy as np
import pytest

from soundtwin.config import load_config
from soundtwin.errors import DatasetError, ModelError
from soundtwin.evaluate import evaluate
from soundtwin.training import train
from soundtwin.runtime.torch_runtime import Verifier

from .conftest import TINY, snapshot


def test_tiny_training_run_learns(trained, trials_file):
    model_dir, res = trained
    assert res.seconds < 60
    ev = evaluate(Verifier.load(model_dir, cache_dir=False), trials_file)
    # 4 synthetic classes, unseen test clips: far better than chance (0.5)
    assert ev.metrics.eer <= 0.1, ev.metrics
    assert ev.metrics.accuracy >= 0.8
    assert res.history[-1].loss < res.history[0].loss


def test_model_directory_is_self_contained(trained):
    model_dir, res = trained
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "meta.json", "calibration.npz", "train_state.safetensors"} <= names
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["soundtwin_version"] and meta["complete"] and meta["epoch"] == 20
    assert meta["features"]["sample_rate"] == 16000 and meta["threshold_rule"] == "eer"
    assert not list(model_dir.parent.glob(".tiny.*"))  # no temporary leftovers
    v = Verifier.load(model_dir)
    assert v.threshold == pytest.approx(meta["threshold"]) and v.fingerprint == meta["fingerprint"]


def test_scores_symmetric_and_unit_norm(trained, synth_data):
    v = Verifier.load(trained[0], cache_dir=False)
    a, b = sorted((synth_data / "test" / "hum").glob("*.wav"))[:2]
    emb = v.embed([a, b])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert v.score(a, b) == pytest.approx(v.score(b, a), abs=1e-6)
    d = v.verify(a, b)
    assert d.same == (d.score >= d.threshold) and 0 <= d.probability <= 1


def test_training_is_reproducible(synth_data, tmp_path):
    cfg = load_config("default", overrides=TINY + ["train.epochs=2"])
    r1 = train(synth_data / "train", tmp_path / "a", cfg, cache_dir=tmp_path / "c")
    r2 = train(synth_data / "train", tmp_path / "b", cfg, cache_dir=tmp_path / "c")
    assert [h.loss for h in r1.history] == pytest.approx([h.loss for h in r2.history], rel=1e-5)


def test_interrupt_leaves_usable_model_and_resume_finishes(synth_data, tmp_path):
    cfg = load_config("default", overrides=TINY + ["train.epochs=4"])

    def stop_after_two(e):
        if e.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(synth_data / "train", tmp_path / "m", cfg, cache_dir=tmp_path / "c", on_epoch=stop_after_two)
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["epoch"] == 2 and not meta["complete"]
    Verifier.load(tmp_path / "m").embed([next((synth_data / "test").rglob("*.wav"))])
    res = train(synth_data / "train", tmp_path / "m", cfg, resume=True, cache_dir=tmp_path / "c")
    assert [h.epoch for h in res.history] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["complete"]


def test_failed_run_leaves_previous_model_intact(synth_data, trained, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(trained[0], target)
    before = snapshot(target)
    cfg = load_config("default", overrides=TINY)
    import soundtwin.runtime.torch_runtime as vmod

    def crash(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C while the model directory is being written

    monkeypatch.setattr(vmod, "weights_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        train(synth_data / "train", target, cfg, cache_dir=tmp_path / "c", overwrite=True)
    after = snapshot(target)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before
    assert not list(tmp_path.glob(".model.*"))


def test_bad_clip_in_dataset_is_skipped(synth_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_data / "train", data)
    (data / "hum" / "broken.wav").write_bytes(b"RIFF....garbage")
    cfg = load_config("default", overrides=TINY + ["train.epochs=1"])
    res = train(data, tmp_path / "m", cfg, cache_dir=False)
    assert len(res.skipped) == 1 and "broken.wav" in res.skipped[0][1]


def test_one_class_dataset_is_refused(synth_data, tmp_path):
    import shutil

    shutil.copytree(synth_data / "train" / "hum", tmp_path / "d" / "hum")
    with pytest.raises(DatasetError, match="at least two classes"):
        train(tmp_path / "d", tmp_path / "m", load_config("default", overrides=TINY), cache_dir=False)


def test_resume_without_state_is_refused(tmp_path):
    with pytest.raises(ModelError, match="nothing to resume"):
        train(tmp_path, tmp_path / "m", load_config("default"), resume=True)


def test_tutorial_preset_trains(synth_data, tmp_path):
    cfg = load_config("tutorial", overrides=["train.epochs=2"])
    res = train(synth_data / "train", tmp_path / "t", cfg, cache_dir=tmp_path / "c")
    v = Verifier.load(tmp_path / "t")
    assert v.cfg.preset == "tutorial" and v.embed([next((synth_data / "test").rglob("*.wav"))]).shape == (1, 128)
    assert len(res.history) == 2


def test_corrupt_model_dir_is_refused(trained, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(trained[0], d)
    blob = bytearray((d / "model.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="fingerprint"):
        Verifier.load(d)
    (d / "meta.json").unlink()
    with pytest.raises(ModelError, match="missing meta.json"):
        Verifier.load(d)
    with pytest.raises(ModelError, match="no such model directory"):
        Verifier.load(tmp_path / "nowhere")


def test_model_from_an_older_version_with_fewer_config_keys_loads(trained, tmp_path):
    """A model written before a config key existed keeps loading (the key takes its default), and
    its fingerprint, which galleries and ONNX files record, stays the one it was saved with."""
    import shutil

    from soundtwin.runtime.modeldir import weights_fingerprint

    d = tmp_path / "old"
    shutil.copytree(trained[0], d)
    raw = json.loads((d / "config.json").read_text())
    del raw["train"]["fixed_pairs"]
    (d / "config.json").write_text(json.dumps(raw))
    meta = json.loads((d / "meta.json").read_text())
    meta.pop("meta_checksum")  # (models of that time had none)
    meta["fingerprint"] = weights_fingerprint((d / "model.safetensors").read_bytes(), raw)
    (d / "meta.json").write_text(json.dumps(meta))
    v = Verifier.load(d)
    assert v.fingerprint == meta["fingerprint"] and v.cfg.train.fixed_pairs is False


def test_crop_prefers_loud_stretches():
    from soundtwin.training.batches import crop

    feat = np.full((4, 100), -18.0, dtype=np.float32)  # silence (log energy)
    feat[:, 60:70] = 0.0  # one loud event
    rng = np.random.default_rng(0)
    loud = [crop(feat, 10, rng, candidates=8) for _ in range(50)]
    rand = [crop(feat, 10, rng, candidates=1) for _ in range(50)]
    assert np.mean([np.max(c) == 0.0 for c in loud]) > 0.8 > np.mean([np.max(c) == 0.0 for c in rand])
    assert crop(feat[:, :5], 10, rng).shape == (4, 5)


def test_balanced_batches_hold_several_clips_of_each_class(synth_data, tmp_path):
    from soundtwin.data import stratified_split
    from soundtwin.extractor import FeatureExtractor
    from soundtwin.training.batches import balanced
    from soundtwin.training.dataset import load_labelled

    cfg = load_config("default", overrides=TINY + ["train.sampler=balanced", "train.per_class=4", "train.batch_size=16"])
    lf = load_labelled(synth_data / "train", FeatureExtractor(cfg.features, cache_dir=tmp_path / "c"))
    tr_idx, ho_idx = stratified_split(lf.labels, 0.15, 0)
    state = np.random.get_state()
    batches = balanced(tr_idx, lf.labels, 16, 4, np.random.default_rng(0))
    assert np.array_equal(np.random.get_state()[1], state[1])  # numpy's global generator is left alone
    again = balanced(tr_idx, lf.labels, 16, 4, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # seeded by the generator passed in
    assert len(batches) >= 3
    for b in batches:
        counts = np.bincount(lf.labels[b], minlength=4)
        assert len(b) == 16 and set(counts[counts > 0]) == {4}  # 4 classes x 4 clips
    res = train(synth_data / "train", tmp_path / "m", cfg, cache_dir=tmp_path / "c")
    assert res.history[-1].heldout_eer <= 0.2


def test_ensemble_trains_saves_and_exports(synth_data, trials_file, tmp_path):
    from soundtwin.runtime.export import export_onnx
    from soundtwin.runtime.onnx_runtime import OnnxVerifier

    cfg = load_config("default", overrides=TINY + ["train.epochs=8", "model.ensemble=2"])
    res = train(synth_data / "train", tmp_path / "ens", cfg, cache_dir=tmp_path / "c")
    v = Verifier.load(tmp_path / "ens", cache_dir=tmp_path / "c")
    assert set(k.split(".")[1] for k in v.encoder.state_dict()) == {"0", "1"}
    assert res.history[-1].loss < res.history[0].loss
    ev = evaluate(v, trials_file)
    assert ev.metrics.eer <= 0.15, ev.metrics
    clips = sorted((synth_data / "test").rglob("*.wav"))[:4]
    a = v.embed(clips)
    assert a.shape == (4, 64) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    export_onnx(v, tmp_path / "ens" / "model.onnx")
    b = OnnxVerifier.load(tmp_path / "ens", cache_dir=False).embed(clips)
    assert np.max(np.abs(a - b)) <= 1e-4


@pytest.mark.parametrize("fixed", [True, False])
def test_tutorial_pairs_are_drawn_once_and_reshuffled(fixed):
    from soundtwin.training.batches import epoch_pairs

    labels = np.repeat(np.arange(4), 8)
    p1, p2 = (epoch_pairs(labels, 32, np.random.default_rng([0, e]), fixed_seed=0 if fixed else None) for e in (0, 1))
    as_set = [set(zip(*map(list, p))) for p in (p1, p2)]
    assert (as_set[0] == as_set[1]) is fixed and not np.array_equal(p1[0], p2[0])
    assert p1[2].mean() == 0.5  # balanced genuine / impostor either way


def test_contrastive_distance_gradient_is_nan_at_zero_only_without_a_floor():
    import torch

    from soundtwin.training.losses.contrastive import ContrastiveLoss

    for eps, finite in ((0.0, False), (1e-7, True)):
        a = torch.tensor([[0.5, 1.0], [0.2, 0.3]], requires_grad=True)
        b = a.detach().clone()  # the first row of each pair coincides with its partner
        b[1] += 1.0
        ContrastiveLoss(1.0, eps)(a, b, torch.tensor([1.0, 0.0])).backward()
        assert bool(torch.isfinite(a.grad).all()) is finite


@pytest.fixture(scope="module")
def twin_copies(tmp_path_factory):
    """Two classes whose clips are exact copies of one another: every genuine pair has distance 0."""
    import shutil

    from soundtwin.synth import write_synthetic_dataset

    root = tmp_path_factory.mktemp("twins")
    for path, label in write_synthetic_dataset(root / "src", ["whistle", "hum"], 1, seed=3, min_s=0.5, max_s=0.6):
        (root / "data" / label).mkdir(parents=True)
        for k in range(8):
            shutil.copy(path, root / "data" / label / f"{k}.wav")
    return root / "data"


def test_tutorial_distance_divergence_stops_training_and_keeps_a_usable_model(twin_copies, tmp_path):
    from typer.testing import CliRunner

    from soundtwin.cli import app

    # without dropout two copies of a clip embed identically, so the first genuine pair's gradient is NaN
    r = CliRunner().invoke(app, ["train", str(twin_copies), "--out", str(tmp_path / "t"), "--preset", "tutorial",
                                 "--set", "model.dropout=0", "--cache", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "training diverged: the gradient became non-finite at epoch 1, step 1" in r.output
    assert "loss.distance_eps" in r.output
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["diverged"] == {"epoch": 1, "step": 1} and not meta["complete"]
    v = Verifier.load(tmp_path / "t")
    clips = sorted(twin_copies.rglob("*.wav"))
    assert np.isfinite(v.embed(clips[:2])).all() and np.isfinite(v.threshold)
    # with a floor under the distance the same data trains to the end
    res = train(twin_copies, tmp_path / "f", load_config("tutorial", overrides=["loss.distance_eps=1e-7", "model.dropout=0",
                                                                               "train.epochs=2"]),
                cache_dir=tmp_path / "c")
    assert res.diverged is None and len(res.history) == 2


def test_one_clip_per_class_trains_on_two_views_and_validates_on_unseen_classes(tmp_path):
    from soundtwin.synth import RECIPES, write_synthetic_dataset

    kinds = list(RECIPES)
    write_synthetic_dataset(tmp_path / "one", kinds, 1, seed=4, min_s=2.0, max_s=2.5)  # 8 classes x 1 clip
    cfg = load_config("default", overrides=TINY + ["train.epochs=2", "train.batch_size=8"])
    res = train(tmp_path / "one", tmp_path / "m", cfg, cache_dir=tmp_path / "c")
    meta = res.verifier.meta
    assert meta["views"] and meta["heldout"].startswith("whole classes") and meta["n_heldout_clips"] == 2
    assert np.isfinite(meta["heldout_eer"]) and len(res.history) == 2
    v = Verifier.load(tmp_path / "m", cache_dir=False)
    a, b = sorted((tmp_path / "one").rglob("*.wav"))[:2]
    assert v.verify(a, a).score > v.verify(a, b).score
    write_synthetic_dataset(tmp_path / "two", kinds[:3], 1, seed=4)
    with pytest.raises(DatasetError, match="4 classes or more"):
        train(tmp_path / "two", tmp_path / "m2", cfg, cache_dir=tmp_path / "c")


def test_fine_tuning_a_trained_model_directory_starts_from_its_weights(trained, synth_data, tmp_path):
    from soundtwin.training import finetune_config

    src = Verifier.load(trained[0], cache_dir=False)
    cfg = finetune_config(trained[0], ["train.epochs=1", "train.lr=1e-9"])  # a step too small to move anything
    assert cfg.model == src.cfg.model and cfg.features == src.cfg.features
    res = train(synth_data / "train", tmp_path / "ft", cfg, cache_dir=tmp_path / "c", init_from=trained[0])
    assert res.verifier.meta["fine_tuned_from"] == {"model": str(trained[0]), "fingerprint": src.fingerprint}
    clips = sorted((synth_data / "test").rglob("*.wav"))[:3]
    # began at the source (only its batch-norm statistics moved); a fresh start would be unrelated
    assert np.min(np.sum(res.verifier.embed(clips) * src.embed(clips), axis=1)) > 0.99
    with pytest.raises(ModelError, match="cannot change model.channels"):
        finetune_config(trained[0], ["model.channels=8"])


def _stopped_after_one_epoch_and_resumed(data, out, cfg, cache):
    """Train ``cfg`` on ``data`` into ``out``, interrupted after epoch 1, then resume it to the end."""

    def stop_after_one(e):
        if e.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, out, cfg, cache_dir=cache, on_epoch=stop_after_one)
    return train(data, out, cfg, resume=True, cache_dir=cache)


def test_training_with_a_teacher_resumes_as_if_never_stopped_and_fine_tunes_without_it(synth_data, tmp_path):
    """The distillation head is part of the objective's saved state: a run stopped after an epoch and resumed
    gives the losses of a run that never stopped (the targets file is read again, not checkpointed). Fine-tuning
    the result does not distil: the targets were for the pretraining's classes (and the file may be gone)."""
    from soundtwin.training import finetune_config
    from soundtwin.training.losses.teacher import save_targets
    import torch

    g = torch.Generator().manual_seed(0)
    save_targets(tmp_path / "t.safetensors", {c: torch.randn(8, generator=g)
                                                for c in ["whistle", "hum", "knock", "hiss"]})
    cfg = load_config("default", overrides=TINY + ["train.epochs=3", "loss.name=supcon",
                                                   f"loss.teacher={tmp_path / 't.safetensors'}"])
    whole = train(synth_data / "train", tmp_path / "a", cfg, cache_dir=tmp_path / "c")

    resumed = _stopped_after_one_epoch_and_resumed(synth_data / "train", tmp_path / "b", cfg, tmp_path / "c")
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in whole.history], rel=1e-5)
    plain = train(synth_data / "train", tmp_path / "p", load_config("default", overrides=TINY + [
        "train.epochs=3", "loss.name=supcon"]), cache_dir=tmp_path / "c")
    # the teacher's term is in the loss: with it the loss is higher by up to its weight (cosine gap in [0, 2])
    assert whole.history[0].loss > plain.history[0].loss
    (tmp_path / "t.safetensors").unlink()
    cfg = finetune_config(tmp_path / "a", ["train.epochs=1"])
    assert cfg.loss.teacher == "" and cfg.loss.name == "supcon"
    tuned = train(synth_data / "train", tmp_path / "ft", cfg, cache_dir=tmp_path / "c", init_from=tmp_path / "a")
    assert tuned.verifier.meta["fine_tuned_from"]["model"] == str(tmp_path / "a")


def test_a_projection_head_trains_resumes_and_is_dropped_from_the_model_and_from_fine_tuning(synth_data, tmp_path):
    """``loss.projection``: the head is in the training state (a run stopped after an epoch and resumed gives
    the losses of one that never stopped) but not in the model (the saved weights are the encoder's, the same
    tensors as without it), and fine-tuning the result trains the embedding itself (no head)."""
    from safetensors.torch import load_file

    from soundtwin.training import finetune_config

    base = TINY + ["train.epochs=3", "loss.name=supcon"]
    cfg = load_config("default", overrides=base + ["loss.projection=16"])
    whole = train(synth_data / "train", tmp_path / "a", cfg, cache_dir=tmp_path / "c")

    resumed = _stopped_after_one_epoch_and_resumed(synth_data / "train", tmp_path / "b", cfg, tmp_path / "c")
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in whole.history], rel=1e-5)
    plain = train(synth_data / "train", tmp_path / "p", load_config("default", overrides=base),
                  cache_dir=tmp_path / "c")
    with_head, without = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("a", "p"))
    assert {k: v.shape for k, v in with_head.items()} == {k: v.shape for k, v in without.items()}
    assert [h.loss for h in whole.history] != pytest.approx([h.loss for h in plain.history], rel=1e-3)
    ft = finetune_config(tmp_path / "a", ["train.epochs=1"])
    assert ft.loss.projection == 0 and ft.loss.name == "supcon"
    assert finetune_config(tmp_path / "a", ["train.epochs=1", "loss.projection=8"]).loss.projection == 8


def test_weight_averaging_keeps_the_average_and_resumes_as_if_never_stopped(synth_data, tmp_path):
    """``train.ema_epochs``: training follows the same path as without it, and what is kept (the saved model,
    the returned verifier, the held-out EER) is the exponential moving average of the weights after each step,
    decay 1 - 1 / (ema_epochs x steps an epoch). The weights trained on travel in the training state: a run
    stopped after an epoch and resumed keeps the same average as one that never stopped."""
    import torch
    from safetensors.torch import load_file
    from torch.optim.optimizer import register_optimizer_step_post_hook

    base = TINY + ["train.epochs=3", "train.lr=0.02"]
    steps: list[list[torch.Tensor]] = []
    hook = register_optimizer_step_post_hook(
        lambda opt, *_: steps.append([p.detach().clone() for p in opt.param_groups[0]["params"]]))
    try:
        avg = train(synth_data / "train", tmp_path / "a", load_config("default", overrides=base + ["train.ema_epochs=1"]),
                    cache_dir=tmp_path / "c")
    finally:
        hook.remove()
    plain = train(synth_data / "train", tmp_path / "p", load_config("default", overrides=base), cache_dir=tmp_path / "c")
    assert [h.loss for h in avg.history] == pytest.approx([h.loss for h in plain.history], rel=1e-5)

    decay = 1 - 1 / (len(steps) / 3)  # one epoch's steps
    ema = steps[0]
    for w in steps[1:]:
        ema = [decay * e + (1 - decay) * x for e, x in zip(ema, w)]
    saved = load_file(str(tmp_path / "a" / "model.safetensors"))
    names = [n for n, _ in Verifier.load(tmp_path / "a", cache_dir=False).encoder.named_parameters()]
    assert len(names) == len(ema)
    for n, e, last in zip(names, ema, steps[-1]):
        key = next(k for k in saved if k.endswith(n))
        assert torch.allclose(saved[key], e, atol=1e-5), n
    # (the average is not the last step's weights, and the returned verifier holds it too)
    assert max(float((s - e).abs().max()) for s, e in zip(steps[-1], ema)) > 1e-3
    clips = sorted((synth_data / "test").rglob("*.wav"))[:4]
    assert np.allclose(avg.verifier.embed(clips), Verifier.load(tmp_path / "a", cache_dir=False).embed(clips), atol=1e-5)
    assert not np.allclose(avg.verifier.embed(clips), plain.verifier.embed(clips), atol=1e-3)

    cfg = load_config("default", overrides=base + ["train.ema_epochs=1"])
    resumed = _stopped_after_one_epoch_and_resumed(synth_data / "train", tmp_path / "b", cfg, tmp_path / "c")
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in avg.history], rel=1e-5)
    assert [h.heldout_eer for h in resumed.history] == pytest.approx([h.heldout_eer for h in avg.history], abs=1e-6)
    again = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.allclose(again[k], saved[k], atol=1e-5) for k in saved)


def test_layer_decay_trains_each_block_at_a_fraction_of_the_rate_above_and_resumes(trained, synth_data, tmp_path):
    """``train.layer_decay``: fine-tuning moves the output end at the full rate and each block below at
    ``layer_decay`` times the rate above: with a tiny decay the first convolution block keeps the source's
    weights while the output layer moves. A run stopped after an epoch and resumed gives the same losses."""
    import torch
    from soundtwin.config import ConfigError
    from soundtwin.training import finetune_config

    src = {n: p.detach() for n, p in Verifier.load(trained[0], cache_dir=False).encoder.named_parameters()}
    # (a contrastive loss over the batch: the source's triplet loss is already 0 on these clips)
    base = ["train.epochs=2", "train.lr=0.01", "loss.name=supcon"]
    cfg = finetune_config(trained[0], [*base, "train.layer_decay=1e-4"])
    res = train(synth_data / "train", tmp_path / "ft", cfg, cache_dir=tmp_path / "c", init_from=trained[0])
    tuned = {n: p.detach() for n, p in res.verifier.encoder.named_parameters()}
    moved = {n: float((tuned[n] - src[n]).abs().max()) for n in src}
    # Adam's steps are about the rate: 0.01 at the top, 0.01 x 1e-4 ** 5 in block 1
    assert moved["fc.weight"] > 1e-3 and moved["block1.conv.weight"] < 1e-9, moved
    assert moved["block4.conv.weight"] < moved["aggregate.conv.weight"] < moved["fc.weight"]
    plain = train(synth_data / "train", tmp_path / "p", finetune_config(trained[0], base),
                  cache_dir=tmp_path / "c", init_from=trained[0])
    assert float((plain.verifier.encoder.block1.conv.weight.detach() - src["block1.conv.weight"]).abs().max()) > 1e-3

    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        train(synth_data / "train", out, cfg, cache_dir=tmp_path / "c", init_from=trained[0],
              on_epoch=lambda e: (_ for _ in ()).throw(KeyboardInterrupt) if e.epoch == 1 else None)
    resumed = train(synth_data / "train", out, cfg, resume=True, cache_dir=tmp_path / "c")
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in res.history], rel=1e-5)
    assert torch.allclose(resumed.verifier.encoder.fc.weight.detach(), tuned["fc.weight"], atol=1e-6)

    # the blocks hold every weight once, with a 2-D stem and in an ensemble (its members' blocks depth by depth)
    from soundtwin.encoders import build_encoder

    for extra in (["model.stem=4"], ["model.ensemble=2", "model.distance=cosine"]):
        enc = build_encoder(load_config("default", overrides=TINY + extra))
        held = [id(p) for g in enc.layer_groups() for p in g]
        assert sorted(held) == sorted(id(p) for p in enc.parameters()) and len(enc.layer_groups()) == 6

    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="train.layer_decay"):
            load_config("default", overrides=[f"train.layer_decay={bad}"])
    with pytest.raises(ConfigError, match="model.name=mlp"):
        train(synth_data / "train", tmp_path / "m", load_config("tutorial", overrides=["train.layer_decay=0.5",
                                                                                       "train.epochs=1"]),
              cache_dir=tmp_path / "c")
