"""Scores you can trust: where the threshold is set, whether a requested false-accept rate holds on classes
the calibration never saw, and whether a sound of no enrolled class comes back ``unknown``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.data import read_manifest, validation_split
from soundtwin.distance import unit
from soundtwin.errors import DatasetError
from soundtwin.gallery import UNKNOWN, Gallery
from soundtwin.metrics import (MIN_TAIL_TRIALS, calibrate, expected_calibration_error, rates_at,
                               threshold_at_far)
from soundtwin.pretrained import load_builtin
from soundtwin.synth import RECIPES, write_synthetic_dataset

from .conftest import TINY

runner = CliRunner()


def test_a_manifest_group_column_holds_out_whole_groups(tmp_path: Path):
    rows = ["path,label,group"] + [f"c{k}.wav,{'abc'[k % 3]},spk{k % 5}" for k in range(60)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    clips = read_manifest(tmp_path / "m.csv")
    assert clips[7].group == "spk2" and clips[7].label == "b"
    labels = np.array([k % 3 for k in range(60)])
    groups = [c.group for c in clips]
    train, held, how = validation_split(labels, 0.2, 0, groups)
    assert how == "groups" and len(held) and len(train) + len(held) == 60
    assert not {groups[i] for i in held} & {groups[i] for i in train}  # no speaker on both sides
    # without the column the same set holds out clips of every class
    assert validation_split(labels, 0.2, 0)[2] == "clips"
    with pytest.raises(DatasetError, match="group"):
        validation_split(labels, 0.2, 0, None, "groups")
    # every clip its own class (a manifest for two-view training), grouped by source: whole sources held out
    solo = np.arange(40)
    src = [f"pkg{k % 4}" for k in range(40)]
    train, held, how = validation_split(solo, 0.2, 0, src)
    assert how == "groups" and len({src[i] for i in held}) == 1 and len(held) == 10


def test_whole_classes_are_held_out_when_asked_or_when_classes_are_too_small_to_split():
    many = np.repeat(np.arange(8), 5)
    assert validation_split(many, 0.15, 0)[2] == "clips"
    train, held, how = validation_split(many, 0.15, 0, on="classes")
    assert how == "classes" and not set(many[held]) & set(many[train]) and len(set(many[held])) == 2
    singletons = np.arange(10)
    assert validation_split(singletons, 0.15, 0)[2] == "classes"
    with pytest.raises(DatasetError, match="calibrate_on=classes"):
        validation_split(singletons, 0.15, 0, on="clips")


def test_expected_calibration_error_by_hand():
    p, y = np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 0, 0, 0])
    # bin 0.9: says 0.9, half are genuine (|0.4| x 2 trials); bin 0.1: says 0.1, none are (|0.1| x 2)
    assert expected_calibration_error(p, y) == pytest.approx((0.4 * 2 + 0.1 * 2) / 4)
    rng = np.random.default_rng(0)
    q = rng.uniform(size=200_000)
    assert expected_calibration_error(q, rng.uniform(size=q.size) < q) < 0.01  # calibrated by construction


def test_threshold_at_far_counts_when_it_can_and_fits_the_tail_when_it_cannot():
    rng = np.random.default_rng(1)
    imp, gen = rng.standard_normal(20_000), rng.standard_normal(20_000) + 4
    s, y = np.concatenate([gen, imp]), np.r_[np.ones(gen.size), np.zeros(imp.size)]
    t = threshold_at_far(s, y, 0.05)
    assert rates_at(s, y, t)[0] == pytest.approx(0.05, abs=0.002)
    few = np.r_[gen[:20], imp[:20]], np.r_[np.ones(20), np.zeros(20)]
    assert 20 * 0.05 < MIN_TAIL_TRIALS
    t_few = threshold_at_far(*few, 0.05)
    assert t_few >= imp[:20].mean() + 1.64 * imp[:20].std(ddof=1) - 1e-9
    cal = calibrate(s, y, far=0.01)
    assert cal["threshold_rule"] == "far=0.01" and cal["expected"]["far"] <= 0.01
    assert cal["expected"]["frr"] == pytest.approx(rates_at(s, y, cal["threshold"])[1], abs=1e-5)


def _classes(rng: np.random.Generator, n_classes: int, shots: int, d: int) -> list[np.ndarray]:
    """Clips of new classes from one embedding geometry: a random centre each, spread about it."""
    return [unit(c + 0.9 * rng.standard_normal((shots, d))) for c in rng.standard_normal((n_classes, d))]


def test_a_requested_far_holds_for_sounds_of_classes_never_enrolled():
    """The gallery sets its threshold on its own enrolled classes; clips of 40 classes it never saw are
    named as a class at about the requested rate (the old pairwise rule let most of them through)."""
    v = load_builtin("speech", cache_dir=False)
    d = v.cfg.model.embedding_dim
    achieved, old = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        g = Gallery("unused", v)
        for k, emb in enumerate(_classes(rng, 30, 5, d)):
            g.add_embeddings(f"c{k}", emb, [f"c{k}-{i}" for i in range(5)])
        unknown = np.concatenate(_classes(rng, 40, 5, d))
        g.set_threshold(far=0.05)
        assert g.threshold_rule == "gallery open-set far=0.05" and g.expected["far"] <= 0.05
        ids = g.identify_embeddings(unknown, ["?"] * len(unknown), top=1)
        achieved.append(np.mean([i.label != UNKNOWN for i in ids]))
        g.threshold = threshold_at_far(*g.enrolled_trials(), 0.05)  # each clip-vs-class pair an impostor
        old.append(np.mean([i.label != UNKNOWN for i in g.identify_embeddings(unknown, ["?"] * len(unknown), 1)]))
    assert 0.05 / 2 <= np.mean(achieved) <= 0.05 * 1.5, achieved
    assert min(old) > 0.2, old


def test_sounds_of_no_enrolled_class_come_back_unknown(tmp_path: Path):
    """A gallery of synthetic voices answers whistles, hums, knocks, hiss and buzz with ``unknown``, and
    the probability it gives them is low."""
    from soundtwin.synth import SR, synth_clip, synth_voice

    v = load_builtin("voice", cache_dir=False)
    g = Gallery.create(tmp_path / "g", "voice")
    for s in range(6):
        g.enroll(f"voice{s}", [(synth_voice(s, u, seconds=1.5), SR) for u in range(5)], save=False, recalibrate=False)
    g.recalibrate()
    assert g.threshold_rule == "gallery open-set eer" and g.verifier.fingerprint == v.fingerprint
    rng = np.random.default_rng(0)
    noises = [(synth_clip(k, rng), SR) for k in ("whistle", "hum", "knock", "hiss", "buzz") for _ in range(3)]
    res = g.identify(noises, top=1)
    assert [r.label for r in res] == [UNKNOWN] * len(noises)
    assert max(r.matches[0].probability for r in res) < 0.5


def test_a_model_trained_on_many_classes_calibrates_on_classes_it_never_trained_on(tmp_path: Path):
    kinds = sorted(RECIPES)
    write_synthetic_dataset(tmp_path / "data", kinds, 6, seed=1, min_s=0.5, max_s=0.8)
    r = runner.invoke(app, ["train", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--quiet",
                            "--no-cache", *sum((["--set", o] for o in [*TINY, "train.epochs=2",
                                                                        "train.calibrate_on=classes"]), [])])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    held = meta["heldout_classes"]
    assert meta["heldout"] == "whole classes held out from training" and len(held) == 2
    assert meta["n_train_clips"] == 6 * (len(kinds) - 2) and meta["n_heldout_clips"] == 12
    r = runner.invoke(app, ["info", str(tmp_path / "m"), "--json"])
    card = json.loads(r.stdout)
    assert card["calibration"]["classes"] == held and card["threshold"] == meta["threshold"]
    exp = card["calibration"]["expected_at_threshold"]
    assert exp["genuine_trials"] > 0 and 0 <= exp["far"] <= 1
    r = runner.invoke(app, ["info", str(tmp_path / "m")])
    assert f"set on whole classes held out from training: {', '.join(held)}" in r.stdout
    r = runner.invoke(app, ["calibrate", str(tmp_path / "m"), "--far", "0.05"])
    assert r.exit_code == 0 and "false accepts" in r.stdout
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["expected"]["far"] <= 0.05


def test_calibrating_on_your_own_clips_replaces_the_held_out_trials(trained, tmp_path: Path):
    """``calibrate MODEL --data DIR``: the threshold and probabilities come from trials on the given clips
    (here sounds the model never trained on), and the model card says so."""
    import shutil

    from soundtwin.runtime.modeldir import read_calibration

    model = tmp_path / "m"
    shutil.copytree(trained[0], model, symlinks=True)
    write_synthetic_dataset(tmp_path / "dev", ["beep", "buzz", "chirp_up"], 5, seed=9, min_s=0.5, max_s=0.8)
    r = runner.invoke(app, ["calibrate", str(model), "--data", str(tmp_path / "dev"), "--far", "0.1"])
    assert r.exit_code == 0, r.output
    meta = json.loads((model / "meta.json").read_text())
    assert meta["heldout_classes"] == ["beep", "buzz", "chirp_up"] and "3 of them not trained on" in meta["heldout"]
    scores, labels = read_calibration(model)
    assert len(labels) == 15 * 14 // 2 and labels.sum() == 3 * 10  # every pair of the 15 clips
    assert meta["threshold_rule"] == "far=0.1" and np.mean(scores[labels == 0] >= meta["threshold"]) <= 0.1
    r = runner.invoke(app, ["calibrate", "voice"])
    assert r.exit_code == 2 and "built-in" in r.stderr
