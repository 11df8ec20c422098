"""What a new user trips over: start-up, warnings, commands that should just work, messages."""

import io
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from soundtwin.cli import app

from .conftest import TINY, tone

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def modules_after(args: list[str]) -> set[str]:
    """Top-level modules a CLI command imports, run in a fresh interpreter."""
    code = ("import sys\nfrom soundtwin.cli import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.strip().splitlines()[-1].split())


def test_help_and_gallery_list_start_without_torch_librosa_or_scipy(gallery):
    for args in (["--help"], ["gallery", str(gallery.path), "list", "--json"]):
        mods = modules_after(args)
        assert not {"torch", "librosa", "scipy"} & mods, args


def test_compare_with_an_exported_model_does_not_import_torch_or_librosa(trained, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(trained[0], d, symlinks=True)
    assert cli("export", d).exit_code == 0
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, tone(440, seconds=1.2), 16000)
    sf.write(b, tone(660, seconds=1.2), 16000)
    mods = modules_after(["compare", str(d), str(a), str(b)])
    assert "onnxruntime" in mods and not {"torch", "librosa"} & mods


def test_clips_too_short_to_judge_are_flagged_in_cli_api_and_http(trained, tmp_path):
    from fastapi.testclient import TestClient

    from soundtwin.server import create_app
    from soundtwin.runtime.torch_runtime import Verifier

    short, ok = tmp_path / "short.wav", tmp_path / "ok.wav"
    sf.write(short, tone(440, seconds=0.1), 16000)
    sf.write(ok, tone(440, seconds=1.0), 16000)
    r = cli("compare", trained[0], short, ok, "--json")
    assert r.exit_code == 0 and "short.wav: 0.10 s is shorter than the 0.5 s" in r.stderr
    assert len(json.loads(r.stdout)["warnings"]) == 1
    d = Verifier.load(trained[0], cache_dir=False).verify(ok, ok)
    assert d.warnings == ()
    buf = io.BytesIO()
    sf.write(buf, tone(440, seconds=0.02), 16000, format="WAV")
    client = TestClient(create_app(trained[0]))
    out = client.post("/compare", files={"a": buf.getvalue(), "b": ok.read_bytes()}).json()
    assert len(out["warnings"]) == 1 and "0.0" in out["warnings"][0]


def test_a_model_near_chance_and_evaluation_clips_from_training_are_reported(trained, synth_data, tmp_path):
    import shutil

    from soundtwin.runtime.torch_runtime import Verifier

    d = tmp_path / "m"
    shutil.copytree(trained[0], d, symlinks=True)
    v = Verifier.load(d)
    v.save(d, meta_updates={"heldout_eer": 0.52}, carry=True)
    clips = sorted((synth_data / "train" / "hum").glob("*.wav"))[:2] + sorted((synth_data / "train" / "knock").glob("*.wav"))[:2]
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 {clips[0]} {clips[1]}\n0 {clips[0]} {clips[2]}\n1 {clips[2]} {clips[3]}\n")
    r = cli("evaluate", d, trials, "--no-cache")
    assert r.exit_code == 0, r.output
    assert "held-out EER is 0.52, near chance" in r.stderr
    assert "4 of the 4 evaluation clips were in this model's training data" in r.stderr
    t = sorted((synth_data / "test" / "hum").glob("*.wav"))[:2] + sorted((synth_data / "test" / "knock").glob("*.wav"))[:1]
    trials.write_text(f"1 {t[0]} {t[1]}\n0 {t[0]} {t[2]}\n")
    r = cli("evaluate", trained[0], trials, "--no-cache", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["warnings"] == []


def test_embed_reads_a_manifest_and_skips_silent_files_with_a_count(trained, synth_data, tmp_path):
    clips = sorted((synth_data / "test" / "hum").glob("*.wav"))[:3]
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\n" + "".join(f"{p},hum\n" for p in clips) + f"{silent},none\n")
    r = cli("embed", trained[0], csv, "--out", tmp_path / "e.npz")
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable or silent clip(s)" in r.stdout and "digitally silent" in r.stderr
    z = np.load(tmp_path / "e.npz")
    assert z["embeddings"].shape[0] == 3 and list(z["labels"]) == ["hum"] * 3
    folder = tmp_path / "f"
    folder.mkdir()
    for p in clips[:2] + [silent]:
        (folder / p.name).write_bytes(p.read_bytes())
    r = cli("embed", trained[0], folder, "--out", tmp_path / "f.npz")
    assert r.exit_code == 0 and np.load(tmp_path / "f.npz")["embeddings"].shape[0] == 2


def test_serve_on_a_taken_port_says_so_first(trained):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = cli("serve", trained[0], "--port", port)
    assert r.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "serving" not in r.stdout


def test_training_output_has_no_cursor_codes_off_a_terminal_and_train_logs_epochs(synth_data, tmp_path, caplog):
    from soundtwin.config import load_config
    from soundtwin.training import train

    args = ["train", synth_data / "train", "--out", tmp_path / "m", "--no-cache"]
    for o in TINY[1:] + ["train.epochs=2"]:
        args += ["--set", o]
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output + r.stderr and "\x1b[" not in r.output + r.stderr
    assert "epoch   2/2" in r.output and "features:" not in r.stderr
    # the CLI also exports model.onnx, so later commands on this model start without torch
    assert (tmp_path / "m" / "model.onnx").is_file() and "exported" in r.output
    with caplog.at_level(logging.INFO, logger="soundtwin"):
        train(synth_data / "train", tmp_path / "m2", load_config("default", overrides=TINY[1:] + ["train.epochs=1"]),
              cache_dir=False)
    assert any("epoch 1/1" in rec.getMessage() for rec in caplog.records)


def test_torch_is_a_range_in_the_package_and_pinned_exactly_by_the_setup_script():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = [d for d in deps if d.replace(" ", "").startswith("torch")]
    assert torch_req and "==" not in torch_req[0] and ">=" in torch_req[0]
    assert 'torch==2.13.0' in (ROOT / "scripts" / "setup.sh").read_text()


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    """Spinning OpenMP threads made training several times slower beside any other job (benchmarks)."""
    code = "import os, soundtwin, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_resume_takes_more_epochs_and_refuses_other_changes(synth_data, tmp_path):
    out = tmp_path / "m"
    base = ["train", synth_data / "train", "--out", out, "--quiet", "--no-cache", "--no-export"]
    sets = sum([["--set", o] for o in TINY[1:]], [])
    assert cli(*base, *sets, "--set", "train.epochs=1").exit_code == 0
    r = cli(*base, "--resume", "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "meta.json").read_text())["epoch"] == 2  # the --set was honoured, not dropped
    r = cli(*base, "--resume", "--set", "model.channels=16")
    assert r.exit_code == 2 and "only train.epochs can change, not model.channels" in r.stderr


def test_export_without_the_onnx_extra_names_the_extra(trained, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    r = cli("export", trained[0])
    assert r.exit_code == 2 and "pip install 'soundtwin[onnx]' (onnx is not installed)" in r.stderr
