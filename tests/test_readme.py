"""Every `soundtwin ...` line of the README's command blocks runs as written, on a tiny layout of the names
it uses (clips/, tutorial_data/, Dogs/, a.wav, trials.txt, ...), in the README's order."""

import glob
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.synth import SR, synth_clip, synth_voice, write_synthetic_dataset

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("soundtwin "):
                lines.append(line)
    return lines


def make_layout(root: Path) -> None:
    rng = np.random.default_rng(0)
    write_synthetic_dataset(root / "clips", ["whistle", "hum", "knock"], 14, seed=1, min_s=1.0, max_s=1.5)
    tut = root / "tutorial_data"
    for folder, kind, n in (("Dogs", "knock", 8), ("Sub_dogs", "knock", 6), ("Cats", "hum", 14)):
        for base in (tut, root):  # the dataset, and its folders where the README names them directly
            (base / folder).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                name = f"bark{k + 1}.wav" if folder == "Dogs" else f"{folder.lower()}{k}.wav"
                sf.write(base / folder / name, synth_clip(kind, rng, min_s=1.0, max_s=1.5), SR)
    for name, kind in (("a.wav", "whistle"), ("b.wav", "whistle"), ("new.wav", "knock")):
        sf.write(root / name, synth_clip(kind, rng, min_s=1.0, max_s=1.5), SR)
    sf.write(root / "hour.wav", np.concatenate([synth_clip(k, rng, min_s=1.0, max_s=1.5)
                                                for k in ("knock", "hum", "whistle", "knock")]), SR)
    clips = sorted((root / "clips").rglob("*.wav"))[::4]  # from every class
    lines = [f"{int(x.parent == y.parent)} {x.relative_to(root)} {y.relative_to(root)}"
             for i, x in enumerate(clips) for y in clips[i + 1:]]
    (root / "trials.txt").write_text("\n".join(lines) + "\n")
    kinds = ["whistle", "hum", "chirp_down", "knock", "hiss", "beep", "buzz", "chirp_up"]
    rows = ["path,label"]
    for c in range(10):  # 10 classes for the 10-way example (two recipes twice, with other seeds)
        for k in range(10):
            p = root / "fs" / f"c{c}_{k}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, synth_clip(kinds[c % 8], rng, min_s=0.6, max_s=1.0), SR)
            rows.append(f"fs/{p.name},c{c}")
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    (root / "my.yaml").write_text("train: {epochs: 10}\n")
    for k in range(3):  # one synthetic voice's utterances, for the built-in voice model's line
        sf.write(root / f"alice{k + 1}.wav", synth_voice(0, k), SR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_serve(args: list[str], cwd: Path) -> None:
    """`serve` runs until stopped: it must come up and answer, then it is stopped."""
    import httpx

    if "--port" in args:  # the README's port may be taken on a test machine: same command, a free port
        args[args.index("--port") + 1] = str(free_port())
    else:
        args += ["--port", str(free_port())]
    port = args[args.index("--port") + 1]
    p = subprocess.Popen([sys.executable, "-m", "soundtwin.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json() == {"status": "ok"}
                return
            except (httpx.HTTPError, AssertionError):
                assert p.poll() is None, p.stdout.read()  # type: ignore[union-attr]
                time.sleep(0.2)
        raise AssertionError("serve did not answer")
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 20 and any(c.startswith("soundtwin verify gal/ dog") for c in commands)
    make_layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOUNDTWIN_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    for line in commands:
        args = []
        for word in shlex.split(line)[1:]:
            args += sorted(glob.glob(word)) if any(ch in word for ch in "*?[") else [word]
        if args[0] == "serve":
            run_serve(args, tmp_path)
            continue
        r = runner.invoke(app, args)
        assert r.exit_code == 0, f"{line}\n{r.output}"
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "found.csv").is_file()
    assert "dog" in (tmp_path / "gal" / "gallery.json").read_text()
    assert os.path.isfile(tmp_path / "models" / "mine" / "model.onnx")
