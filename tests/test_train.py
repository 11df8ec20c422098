import json

import numpy as np
import pytest

from soundtwin.config import load_config
from soundtwin.errors import DatasetError, ModelError
from soundtwin.evaluate import evaluate
from soundtwin.train import train
from soundtwin.verifier import Verifier

from .conftest import TINY


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
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    cfg = load_config("default", overrides=TINY)
    import soundtwin.verifier as vmod

    def crash(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C while the model directory is being written

    monkeypatch.setattr(vmod.Verifier, "_weights_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        train(synth_data / "train", target, cfg, cache_dir=tmp_path / "c")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
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


def test_crop_prefers_loud_stretches():
    from soundtwin.train import crop

    feat = np.full((4, 100), -18.0, dtype=np.float32)  # silence (log energy)
    feat[:, 60:70] = 0.0  # one loud event
    rng = np.random.default_rng(0)
    loud = [crop(feat, 10, rng, candidates=8) for _ in range(50)]
    rand = [crop(feat, 10, rng, candidates=1) for _ in range(50)]
    assert np.mean([np.max(c) == 0.0 for c in loud]) > 0.8 > np.mean([np.max(c) == 0.0 for c in rand])
    assert crop(feat[:, :5], 10, rng).shape == (4, 5)


def test_balanced_batches_hold_several_clips_of_each_class(synth_data, tmp_path):
    from soundtwin.data import stratified_split
    from soundtwin.extract import FeatureExtractor
    from soundtwin.train import _Trainer, load_labelled

    cfg = load_config("default", overrides=TINY + ["train.sampler=balanced", "train.per_class=4", "train.batch_size=16"])
    lf = load_labelled(synth_data / "train", FeatureExtractor(cfg.features, cache_dir=tmp_path / "c"))
    tr_idx, ho_idx = stratified_split(lf.labels, 0.15, 0)
    batches = _Trainer(cfg, lf, tr_idx, ho_idx)._balanced(np.random.default_rng(0))
    assert len(batches) >= 3
    for b in batches:
        counts = np.bincount(lf.labels[b], minlength=4)
        assert len(b) == 16 and set(counts[counts > 0]) == {4}  # 4 classes x 4 clips
    res = train(synth_data / "train", tmp_path / "m", cfg, cache_dir=tmp_path / "c")
    assert res.history[-1].heldout_eer <= 0.2
