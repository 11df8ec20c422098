import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.errors import GalleryError, SoundtwinError
from soundtwin.distance import get_distance
from soundtwin.gallery import UNKNOWN, Gallery

from .conftest import snapshot

runner = CliRunner()


def clips_of(root, name, n=4):
    return sorted((root / name).glob("*.wav"))[:n]


def test_identify_enrolled_and_reject_unknown(gallery, synth_data):
    hums = clips_of(synth_data / "test", "hum", 3)
    res = gallery.identify(hums, top=2)
    assert [r.label for r in res] == ["hum"] * 3 and len(res[0].matches) == 2
    # hiss was never enrolled: open-set rejection, not a forced choice
    hiss = gallery.identify(clips_of(synth_data / "test", "hiss", 6))
    assert sum(r.label == UNKNOWN for r in hiss) >= 4


def test_verify_against_one_class(gallery, synth_data):
    yes = gallery.verify("whistle", clips_of(synth_data / "test", "whistle", 3))
    no = gallery.verify("whistle", clips_of(synth_data / "test", "knock", 3))
    assert all(d.same for d in yes) and not any(d.same for d in no)
    with pytest.raises(GalleryError, match="no class 'cat'"):
        gallery.verify("cat", clips_of(synth_data / "test", "knock", 1))


def test_reload_and_remove(gallery):
    g = Gallery.load(gallery.path)
    assert g.classes == {"hum": 4, "knock": 4, "whistle": 4} and g.embeddings.shape[0] == 12
    g.remove("knock")
    assert Gallery.load(gallery.path).classes == {"hum": 4, "whistle": 4}


def test_other_model_is_refused(gallery, trained, tmp_path):
    other = tmp_path / "other_model"
    shutil.copytree(trained[0], other)
    g = Gallery.load(gallery.path)  # fine with its own model
    from soundtwin.runtime.torch_runtime import Verifier

    v = Verifier.load(other)
    with torch_no_grad():
        p = next(v.encoder.parameters())
        p.add_(0.01)
    v.save(other)
    with pytest.raises(GalleryError, match="made with model"):
        Gallery.load(gallery.path, model_dir=other)
    assert g.classes


def torch_no_grad():
    import torch

    return torch.no_grad()


def test_interrupted_enroll_keeps_previous_gallery(gallery, synth_data, monkeypatch):
    before = snapshot(gallery.path)
    g = Gallery.load(gallery.path)
    g.enroll("hiss", clips_of(synth_data / "train", "hiss"), save=False)

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        g.save()
    after = snapshot(gallery.path)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before
    assert not list(gallery.path.parent.glob(".gal.*"))


def test_cli_enroll_identify_verify_gallery(trained, synth_data, tmp_path):
    gal = tmp_path / "g"
    r = runner.invoke(app, ["enroll", str(gal), str(synth_data / "train"), "--model", str(trained[0])])
    assert r.exit_code == 0, r.output
    assert "4 class(es)" in r.stdout
    r = runner.invoke(app, ["gallery", str(gal), "list", "--json"])
    assert json.loads(r.stdout)["classes"] == {"hiss": 16, "hum": 16, "knock": 16, "whistle": 16}
    r = runner.invoke(app, ["identify", str(gal), *map(str, clips_of(synth_data / "test", "knock", 2)), "--json", "--top", "2"])
    out = json.loads(r.stdout)
    assert [o["label"] for o in out] == ["knock", "knock"] and len(out[0]["matches"]) == 2
    r = runner.invoke(app, ["verify", str(gal), "hum", *map(str, clips_of(synth_data / "test", "hum", 2)), "--json"])
    assert all(o["same"] for o in json.loads(r.stdout))
    r = runner.invoke(app, ["enroll", str(gal), "--label", "extra", str(clips_of(synth_data / "test", "hum", 1)[0]),
                            "--far", "0.01"])
    assert r.exit_code == 0 and "far=0.01" in r.stdout
    r = runner.invoke(app, ["gallery", str(gal), "remove", "nothing"])
    assert r.exit_code == 2 and "no class 'nothing'" in r.stderr
    r = runner.invoke(app, ["identify", str(tmp_path / "nogal"), str(clips_of(synth_data / "test", "hum", 1)[0])])
    assert r.exit_code == 2 and "no gallery here" in r.stderr


def test_tutorial_layout_end_to_end(tmp_path):
    """Dogs/ + Sub_dogs/ (one class) and Cats/: train the tutorial's way, enroll Dogs/, verify the rest."""
    from soundtwin.synth import write_synthetic_dataset

    from .conftest import TINY

    root = tmp_path / "tutorial"
    write_synthetic_dataset(tmp_path / "raw", ["knock", "hum"], 24, seed=3, min_s=0.5, max_s=1.0)
    (root / "Dogs").mkdir(parents=True)
    (root / "Sub_dogs").mkdir()
    (root / "Cats").mkdir()
    for k, p in enumerate(sorted((tmp_path / "raw" / "knock").glob("*.wav"))):
        p.rename(root / ("Dogs" if k < 12 else "Sub_dogs") / p.name)
    for p in sorted((tmp_path / "raw" / "hum").glob("*.wav")):
        p.rename(root / "Cats" / p.name)
    args = ["train", str(root), "--out", str(tmp_path / "m"), "--quiet", "--no-cache"]
    for o in TINY:
        args += ["--set", o]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["classes"] == ["cats", "dogs"]
    r = runner.invoke(app, ["enroll", str(tmp_path / "g"), "--model", str(tmp_path / "m"), "--label", "dog",
                            str(root / "Dogs")])
    assert r.exit_code == 0, r.output
    sub = sorted((root / "Sub_dogs").glob("*.wav"))[:6]
    cats = sorted((root / "Cats").glob("*.wav"))[:6]
    r = runner.invoke(app, ["verify", str(tmp_path / "g"), "dog", *map(str, sub + cats), "--json"])
    out = json.loads(r.stdout)
    assert sum(o["same"] for o in out[:6]) >= 5 and sum(o["same"] for o in out[6:]) <= 1


def test_gallery_calibration_matches_plain_leave_one_out(gallery):
    """The vectorised leave-one-out equals scoring each clip against the gallery without it."""
    g = Gallery.load(gallery.path)
    scores, genuine = g.enrolled_trials()
    names = list(g.classes)
    labels = np.array(g.labels)
    expect = []
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        expect += list(get_distance("cosine").class_scores(g.embeddings[i:i + 1], g.embeddings[keep], labels[keep], names, "mean")[0])
    np.testing.assert_allclose(scores, expect, atol=1e-5)
    assert genuine.sum() == len(labels) and len(genuine) == len(labels) * len(names)
    assert g.threshold_rule == "gallery open-set eer"
    # open-set trials: each clip's own-class score (genuine) and its best other-class score (impostor)
    s2, y2 = g.open_set_trials()
    by_clip = np.asarray(expect).reshape(len(labels), len(names))
    own = by_clip[np.arange(len(labels)), np.searchsorted(names, labels)]
    other = np.where(np.arange(len(names))[None, :] == np.searchsorted(names, labels)[:, None], -np.inf, by_clip).max(1)
    np.testing.assert_allclose(s2, np.concatenate([own, other]), atol=1e-5)
    assert y2.tolist() == [1] * len(labels) + [0] * len(labels)
    g.set_threshold(far=0.05)
    assert g.threshold_rule == "gallery open-set far=0.05" and np.mean(other >= g.threshold) <= 0.05
    # the rate stored with it is the rate of clips whose best wrong class clears the threshold
    assert g.expected["far"] == pytest.approx(np.mean(other >= g.threshold), abs=1e-5)
    g.remove("knock")
    g.remove("whistle")  # one class left: no impostors, so the model's held-out trials decide
    assert g.threshold_rule.startswith("model far=0.05")


def test_one_single_clip_class_does_not_reset_the_gallery_threshold(gallery, synth_data):
    """The gallery's own trials keep setting the threshold when one class has a single clip."""
    g = Gallery.load(gallery.path)
    assert g.threshold_rule == "gallery open-set eer"
    before = g.threshold
    g.enroll("hiss", clips_of(synth_data / "train", "hiss", 1))
    r = runner.invoke(app, ["gallery", str(gallery.path), "list", "--json"])
    info = json.loads(r.stdout)
    assert info["threshold_rule"] == "gallery open-set eer" and info["classes"]["hiss"] == 1
    scores, genuine = Gallery.load(gallery.path).enrolled_trials()
    assert genuine.sum() == 12 and len(genuine) == 13 * 4 - 1  # 12 genuine; the singleton adds 3 impostors
    assert abs(info["threshold"] - before) < 0.3


def test_a_threshold_given_for_one_call_decides_and_nothing_is_saved(gallery, synth_data):
    hiss = clips_of(synth_data / "test", "hiss", 4)  # never enrolled
    stored = gallery.threshold
    before = snapshot(gallery.path)
    default = gallery.identify(hiss)
    low = gallery.identify(hiss, threshold=-1.0)  # every best class clears it: a forced choice
    assert sum(r.label == UNKNOWN for r in default) >= 2 and not any(r.label == UNKNOWN for r in low)
    assert [r.matches for r in low] == [r.matches for r in default]  # scores and probabilities unchanged
    hums = clips_of(synth_data / "test", "hum", 2)
    high = gallery.verify("hum", hums, threshold=1.0)
    assert not any(d.same for d in high) and all(d.threshold == 1.0 for d in high)
    assert [d.probability for d in high] == [d.probability for d in gallery.verify("hum", hums)]
    assert gallery.threshold == stored and Gallery.load(gallery.path).threshold == stored
    after = snapshot(gallery.path)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before
    for bad, why in ((2.0, r"cosines, in \[-1, 1\]"), (float("nan"), "finite"), ("high", "not a number")):
        with pytest.raises(SoundtwinError, match=why):
            gallery.identify(hums, threshold=bad)


def test_cli_threshold_option_on_compare_identify_verify(trained, gallery, synth_data):
    hum, hiss = clips_of(synth_data / "test", "hum", 1)[0], clips_of(synth_data / "test", "hiss", 1)[0]
    r = runner.invoke(app, ["compare", str(trained[0]), str(hum), str(hiss), "--json", "--threshold", "-1"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["same"] is True and json.loads(r.stdout)["threshold"] == -1.0
    r = runner.invoke(app, ["compare", str(trained[0]), str(hum), str(hum), "--json", "--threshold", "1.0001"])
    assert r.exit_code == 2 and "threshold 1.0001" in r.stderr and "[-1, 1]" in r.stderr
    r = runner.invoke(app, ["identify", str(gallery.path), str(hiss), "--json", "--threshold", "-1"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["label"] != UNKNOWN
    r = runner.invoke(app, ["verify", str(gallery.path), "hum", str(hum), "--json", "--threshold", "1"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["same"] is False
    r = runner.invoke(app, ["gallery", str(gallery.path), "list", "--json"])
    assert json.loads(r.stdout)["threshold"] == gallery.threshold
