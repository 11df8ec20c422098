import json

import pytest

from soundtwin.config import PRESETS, load_config, parse_override
from soundtwin.errors import ConfigError


def test_tutorial_preset_is_the_tutorial():
    c = PRESETS["tutorial"]
    assert (c.features.kind, c.features.sample_rate, c.features.decimate, c.features.n_mfcc, c.features.max_frames) == \
        ("tutorial", 22050, 3, 20, 400)
    assert (c.model.name, c.model.hidden, c.model.layers, c.model.dropout, c.model.distance) == \
        ("mlp", 128, 3, 0.1, "euclidean")
    assert (c.loss.name, c.loss.margin) == ("contrastive", 1.0)
    assert (c.train.optimizer, c.train.lr, c.train.batch_size, c.train.epochs) == ("rmsprop", 1e-3, 128, 13)
    # one pair array drawn once (Keras shuffles it each epoch); a quarter held out (validation_split=.25)
    assert c.train.fixed_pairs and c.train.val_fraction == 0.25
    assert not c.augment.enabled


def test_overrides_are_typed():
    c = load_config("default", overrides=["train.epochs=3", "train.lr=1e-2", "augment.enabled=false", "train.lr=1"])
    assert c.train.epochs == 3 and c.train.lr == 1.0 and isinstance(c.train.lr, float) and not c.augment.enabled
    assert parse_override("a.b=x") == {"a": {"b": "x"}}


@pytest.mark.parametrize("item,msg", [
    ("train.epochz=3", "unknown config key 'train.epochz'"),
    ("nope=1", "unknown config key 'nope'"),
    ("train.epochs=three", "train.epochs: expected int, got str"),
    ("train.epochs=2.5", "train.epochs: expected int"),
    ("augment.enabled=3", "augment.enabled: expected bool"),
    ("model.name=resnet", "model.name: 'resnet' is not one of"),
    ("train.epochs=0", "train.epochs: must be > 0"),
    ("train.epochs", "must look like key=value"),
])
def test_bad_overrides(item, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config("default", overrides=[item])


def test_yaml_and_toml_files(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("preset: tutorial\ntrain:\n  epochs: 2\n  lr: 2e-4\n")  # (YAML 1.1 reads 2e-4 as a string)
    t = tmp_path / "c.toml"
    t.write_text("[model]\nchannels = 64\n")
    assert load_config(config_file=y).train.epochs == 2 and load_config(config_file=y).model.name == "mlp"
    assert load_config(config_file=y).train.lr == 2e-4
    y.write_text("train:\n  lr: 2e-4x\n")  # a string that is no number stays an error naming the key
    with pytest.raises(ConfigError, match="train.lr: expected float, got str '2e-4x'"):
        load_config(config_file=y)
    assert load_config(config_file=t).model.channels == 64
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.width'"):
        load_config(config_file=bad)


def test_a_model_directorys_config_json_reads_back_as_the_same_config(tmp_path):
    """``--config model/config.json`` (train again as that model was): the config as written reads back equal,
    small floats (``1e-07``, as JSON writes them) included; broken JSON is a ConfigError naming the file."""
    cfg = load_config("sound", overrides=["loss.distance_eps=1e-7", "train.lr=2e-5", "train.epochs=3"])
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg.to_dict()))
    assert "1e-07" in f.read_text()
    assert load_config(config_file=f) == cfg
    f.write_text('{"train": {"epochs": 3,}}')
    with pytest.raises(ConfigError, match="config.json: cannot parse config"):
        load_config(config_file=f)


def test_inconsistent_config_is_refused():
    with pytest.raises(ConfigError, match="max_frames"):
        load_config("default", overrides=["model.name=mlp"])
    with pytest.raises(ConfigError, match="unknown preset|is not one of"):
        load_config("fancy")
