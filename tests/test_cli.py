import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundtwin.cli import app

from .conftest import TINY

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_evaluate_json_and_scores(trained, trials_file, tmp_path):
    scores = tmp_path / "scores.txt"
    r = run("evaluate", trained[0], trials_file, "--scores", scores, "--json", "--no-cache")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["eer"] <= 0.1 and out["trials"] == len(trials_file.read_text().splitlines())
    assert out["clips"] == 24 and 0 <= out["accuracy"] <= 1
    lines = scores.read_text().splitlines()
    assert len(lines) == out["trials"] and len(lines[0].split()) == 3


def test_unlabelled_trials_are_scored_not_counted(trained, trials_file, tmp_path):
    lines = trials_file.read_text().splitlines()
    t = tmp_path / "t.txt"
    t.write_text("\n".join([" ".join(l.split()[1:]) for l in lines[:3]] + lines[3:]) + "\n")
    t2 = trials_file.parent / "mixed.txt"
    t2.write_text(t.read_text())
    out = json.loads(run("evaluate", trained[0], t2, "--json", "--no-cache").stdout)
    assert out["trials"] == len(lines) and out["n_trials"] == len(lines) - 3


def test_compare_and_embed(trained, synth_data, tmp_path):
    a, b = sorted((synth_data / "test" / "hum").glob("*.wav"))[:2]
    r = run("compare", trained[0], a, b, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["same"] == (out["score"] >= out["threshold"])
    npz = tmp_path / "e.npz"
    r = run("embed", trained[0], synth_data / "test", "--out", npz)
    assert r.exit_code == 0, r.output
    with np.load(npz, allow_pickle=False) as z:
        assert z["embeddings"].shape == (24, 32) and len(z["paths"]) == 24


def test_train_command(synth_data, tmp_path):
    args = ["train", synth_data / "train", "--out", tmp_path / "m", "--quiet", "--cache", tmp_path / "c"]
    for o in TINY + ["train.epochs=2"]:
        args += ["--set", o]
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "epoch   2/2" in r.output and "held-out EER" in r.output and (tmp_path / "m" / "meta.json").exists()


@pytest.mark.parametrize("args,msg", [
    (["compare", "{model}", "{missing}", "{missing}"], "missing.wav: no such file"),
    (["compare", "{nomodel}", "{missing}", "{missing}"], "no such model directory"),
    (["train", "{missing_dir}", "--out", "{out}"], "no such folder or manifest"),
    (["train", "{data}", "--out", "{out}", "--set", "train.epochz=1"], "unknown config key 'train.epochz'"),
    (["train", "{data}", "--out", "{out}", "--preset", "fancy"], "'fancy' is not one of"),
    (["evaluate", "{model}", "{badtrials}"], "label must be 1 or 0"),
])
def test_bad_input_gives_one_line_error(args, msg, trained, synth_data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 a.wav b.wav\n")
    subs = {"{model}": trained[0], "{missing}": tmp_path / "missing.wav", "{nomodel}": tmp_path / "nomodel",
            "{missing_dir}": tmp_path / "nodata", "{out}": tmp_path / "o", "{data}": synth_data / "train",
            "{badtrials}": bad}
    r = run(*[subs.get(a, a) for a in args])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert err.startswith("error: ") and msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_report_and_training_plot(trained, trials_file, synth_data, tmp_path):
    csv = tmp_path / "test.csv"
    csv.write_text("path,label\n" + "".join(f"{p},{p.parent.name}\n" for p in sorted((synth_data / "test").rglob("*.wav"))))
    r = run("report", trained[0], trials_file, "--out", tmp_path / "rep", "--labels", csv)
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "index.html").read_text()
    for png in ("roc_det.png", "scores.png", "embeddings.png", "training.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"
        assert f'alt="{png}"' in page
    assert "Worst false accepts" in page and "EER" in page
    args = ["train", synth_data / "train", "--out", tmp_path / "m", "--quiet", "--no-cache", "--plot", tmp_path / "curves.png"]
    for o in TINY + ["train.epochs=2"]:
        args += ["--set", o]
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_runs_and_runs_again_in_the_same_workdir(tmp_path):
    """The README's main job; a second run replaces the demo's own model instead of refusing."""
    for _ in range(2):
        r = run("demo", "--workdir", tmp_path / "d", "--epochs", "1")
        assert r.exit_code == 0, r.output
        assert "[4/4] comparing clips" in r.output and "unseen classes  EER" in r.output


def test_evaluate_worst_names_the_clips_behind_the_errors(trained, trials_file):
    """A clip whose every trial is labelled the wrong way round (a mislabelled recording) heads ``--worst``, and
    the EER without its trials is the model's own again."""
    lines = [l.split() for l in trials_file.read_text().splitlines()]
    bad = lines[0][1]
    flipped = trials_file.parent / "one-mislabelled.txt"
    flipped.write_text("".join(f"{1 - int(y) if bad in (a, b) else y} {a} {b}\n" for y, a, b in lines))
    out = json.loads(run("evaluate", trained[0], flipped, "--worst", 2, "--json", "--no-cache").stdout)
    top = out["worst_clips"][0]
    assert top["clip"].endswith(bad) and top["error_share"] >= 0.8, out["worst_clips"]
    assert top["trials"] == sum(bad in (a, b) for _, a, b in lines)
    assert top["error_share"] == round((top["false_rejects"] + top["false_accepts"]) / top["trials"], 4)
    assert len(out["worst_clips"]) == 2 and out["eer"] > out["eer_without_worst"]
    assert out["eer_without_worst"] <= 0.1
    text = run("evaluate", trained[0], flipped, "--worst", 1, "--no-cache").stdout
    assert bad in text and "EER without these clips' trials" in text


def test_hardest_clips_counts_false_rejects_and_accepts_at_the_eer_threshold():
    from soundtwin.data import Trials
    from soundtwin.evaluate import Evaluation, hardest_clips
    from soundtwin.metrics import summarize

    # x is scored like the other class: its genuine trial falls below every impostor, its impostor one above
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.95, 0.85, 0.15])
    trials = Trials(labels, ["p", "x", "p", "x", "q", "q"], ["q", "r", "r", "p", "p", "r"])
    ev = Evaluation(trials, scores, summarize(scores, labels), 4, 0.0)
    worst, rest = hardest_clips(ev, 1)
    assert worst == [{"clip": "x", "trials": 2, "false_rejects": 1, "false_accepts": 1, "error_share": 1.0}]
    assert rest == 0.0  # p-q, p-r, q-p, q-r: separable
    with pytest.raises(ValueError, match="no labels"):
        hardest_clips(Evaluation(trials, scores, None, 4, 0.0), 1)


def test_train_takes_a_models_config_json_as_its_config(trained, synth_data, tmp_path):
    """``--config MODEL/config.json``: train again as that model was trained (here with one change)."""
    from soundtwin.config import changed_keys, load_config

    old = trained[0] / "config.json"
    r = run("train", synth_data / "train", "--out", tmp_path / "again", "--config", old, "--set", "train.epochs=1",
            "--no-export", "--no-cache")
    assert r.exit_code == 0, r.output
    again = load_config(config_file=tmp_path / "again" / "config.json")
    assert changed_keys(load_config(config_file=old), again) == ["train.epochs"] and again.train.epochs == 1
