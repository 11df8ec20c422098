import json
import subprocess
import sys

import numpy as np
import pytest

from soundtwin.runtime.modeldir import seal_meta
from typer.testing import CliRunner

from soundtwin.cli import app
from soundtwin.errors import ModelError

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    import shutil

    d = tmp_path_factory.mktemp("exp") / "m"
    shutil.copytree(trained[0], d)
    return d


def test_export_and_onnx_runtime_match_torch(exported, synth_data):
    clip = sorted((synth_data / "test" / "hum").glob("*.wav"))[0]
    r = runner.invoke(app, ["export", str(exported), "--check", str(clip)])
    assert r.exit_code == 0, r.output
    worst = float(r.stdout.split("= ")[1].split()[0])
    assert worst <= 1e-4 and (exported / "model.onnx").is_file()
    from soundtwin.runtime.onnx_runtime import OnnxVerifier
    from soundtwin.runtime.torch_runtime import Verifier

    clips = sorted((synth_data / "test").rglob("*.wav"))[:7]
    a = Verifier.load(exported, cache_dir=False).embed(clips)
    b = OnnxVerifier.load(exported, cache_dir=False).embed(clips)
    assert np.max(np.abs(a - b)) <= 1e-4


def test_onnx_path_does_not_import_torch(exported, synth_data):
    runner.invoke(app, ["export", str(exported)])
    clip = sorted((synth_data / "test" / "hum").glob("*.wav"))[0]
    code = (
        "import sys, json\n"
        "from soundtwin.runtime.onnx_runtime import OnnxVerifier\n"
        f"v = OnnxVerifier.load({str(exported)!r}, cache_dir=False)\n"
        f"d = v.verify({str(clip)!r}, {str(clip)!r})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'score': d.score}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out == {"torch": False, "score": pytest.approx(1.0, abs=1e-5)}


def test_onnx_from_another_model_is_refused(exported, trained, tmp_path):
    import shutil

    from soundtwin.runtime.onnx_runtime import OnnxVerifier

    runner.invoke(app, ["export", str(exported)])
    d = tmp_path / "m"
    shutil.copytree(exported, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["fingerprint"] = "0" * 24
    (d / "meta.json").write_text(json.dumps(seal_meta(meta)))  # (a well-formed meta of another model)
    with pytest.raises(ModelError, match="exported from another model"):
        OnnxVerifier.load(d)
    (d / "model.onnx").unlink()
    with pytest.raises(ModelError, match="missing model.onnx"):
        OnnxVerifier.load(d)


def test_server_runs_on_onnx(exported, synth_data, tmp_path):
    from fastapi.testclient import TestClient

    from soundtwin.server import create_app

    runner.invoke(app, ["export", str(exported)])
    c = TestClient(create_app(exported, tmp_path / "g", runtime="onnx"))
    assert c.get("/info").json()["runtime"] == "onnx"
    a, b = sorted((synth_data / "test" / "whistle").glob("*.wav"))[:2]
    r = c.post("/compare", files={"a": a.read_bytes(), "b": b.read_bytes()})
    assert r.status_code == 200 and -1 <= r.json()["score"] <= 1


def test_onnx_embeds_long_clips_in_the_same_windows_as_torch(exported, monkeypatch):
    import soundtwin.runtime.base as smod
    from soundtwin.runtime.onnx_runtime import OnnxVerifier
    from soundtwin.runtime.torch_runtime import Verifier

    monkeypatch.setattr(smod, "MAX_EMBED_FRAMES", 120)
    t = np.arange(3 * 16000) / 16000
    y = (0.3 * np.sin(2 * np.pi * (300 + 200 * t) * t)).astype(np.float32)  # 3 s: 301 frames, 4 windows
    a = Verifier.load(exported, cache_dir=False).embed([(y, 16000)])
    b = OnnxVerifier.load(exported, cache_dir=False).embed([(y, 16000)])
    assert np.abs(a - b).max() < 1e-4
