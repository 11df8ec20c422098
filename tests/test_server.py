import io

import numpy as np
import pytest
import soundfile as sf


from fastapi.testclient import TestClient  # noqa: E402

from soundtwin.server import create_app  # noqa: E402


def wav_bytes(y, sr=16000):
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


@pytest.fixture
def client(trained, tmp_path):
    return TestClient(create_app(trained[0], tmp_path / "gal", max_bytes=400_000, max_seconds=5.0))


def files_of(synth_data, name, n):
    return sorted((synth_data / "test" / name).glob("*.wav"))[:n]


def test_health_info_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["sample_rate"] == 16000 and info["preset"] == "default" and "threshold" in info
    page = client.get("/")
    assert page.status_code == 200 and 'id="compareBtn"' in page.text and "cdn" not in page.text.lower()
    assert "/compare" in client.get("/openapi.json").json()["paths"]


def test_compare_answers_as_the_library_does(client, trained, synth_data):
    from soundtwin.runtime.torch_runtime import Verifier

    v = Verifier.load(trained[0], cache_dir=False)
    a, b = files_of(synth_data, "whistle", 2)
    c = files_of(synth_data, "knock", 1)[0]
    for x, y in ((a, b), (a, c)):
        r = client.post("/compare", files={"a": x.read_bytes(), "b": y.read_bytes()}).json()
        d = v.verify(x, y)
        assert r["same"] == d.same and r["score"] == pytest.approx(d.score, abs=1e-5)
        assert r["threshold"] == pytest.approx(v.threshold) and 0 <= r["probability"] <= 1
    assert r["same"] is False  # a whistle is not a knock


def test_8khz_and_short_clips_work(client):
    t = np.arange(2000) / 8000
    y = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)  # 0.25 s at 8 kHz
    r = client.post("/embed", files={"file": wav_bytes(y, 8000)})
    assert r.status_code == 200 and r.json()["dim"] == 32


@pytest.mark.parametrize("payload,status,msg", [
    (b"", 422, "empty upload"),
    (b"not audio" * 10, 415, "cannot decode audio"),
    (wav_bytes(np.zeros(8000, np.float32)), 422, "digitally silent"),
    (wav_bytes((np.random.default_rng(0).standard_normal(16000 * 6) * 0.1).astype(np.float32)), 413, "longer than the 5 s limit"),
    (b"x" * 400_001, 413, "larger than 400000 bytes"),
])
def test_bad_uploads_are_4xx_with_detail(client, payload, status, msg):
    r = client.post("/embed", files={"file": ("clip.wav", payload)})
    assert r.status_code == status and msg in r.json()["detail"]


def test_gallery_enroll_identify_verify_remove(client, synth_data, tmp_path):
    assert client.post("/identify", files={"file": files_of(synth_data, "hum", 1)[0].read_bytes()}).status_code == 409
    for name in ("hum", "knock"):
        files = [("files", (p.name, p.read_bytes())) for p in sorted((synth_data / "train" / name).glob("*.wav"))[:4]]
        r = client.post(f"/gallery/{name}", files=files)
        assert r.status_code == 200 and r.json()["added"] == 4
    assert client.get("/gallery").json()["classes"] == {"hum": 4, "knock": 4}
    card = client.get("/info").json()  # the card says how the model's and the gallery's thresholds were set
    assert card["calibration"]["on"] == "held-out clips of the training classes"
    assert card["gallery"]["threshold_rule"] == "gallery open-set eer"
    assert card["gallery"]["expected_at_threshold"]["impostor_trials"] == 8
    listing = client.get("/gallery").json()
    assert listing["threshold_rule"] == "gallery open-set eer" and listing["far"] is None
    assert listing["expected_at_threshold"] == card["gallery"]["expected_at_threshold"]
    r = client.post("/identify", files={"file": files_of(synth_data, "knock", 1)[0].read_bytes()}, data={"top": "2"})
    assert r.json()["label"] == "knock" and len(r.json()["matches"]) == 2
    r = client.post("/verify", data={"label": "hum"}, files={"file": files_of(synth_data, "hum", 1)[0].read_bytes()})
    assert r.json()["same"] is True
    assert client.post("/verify", data={"label": "cat"}, files={"file": files_of(synth_data, "hum", 1)[0].read_bytes()}).status_code == 404
    assert client.delete("/gallery/knock").json()["classes"] == {"hum": 4}
    assert (tmp_path / "gal" / "gallery.json").is_file()


@pytest.mark.parametrize("label", ["../../etc", "..", "a/b", "unknown", "x" * 70])
def test_labels_cannot_escape_or_abuse_the_gallery(client, synth_data, tmp_path, label):
    p = files_of(synth_data, "hum", 1)[0]
    r = client.post(f"/gallery/{label}", files=[("files", (p.name, p.read_bytes()))])
    assert 400 <= r.status_code < 500  # "..": the path normalises to / (405); others 404 or 422
    assert sorted(x.name for x in tmp_path.iterdir()) in ([], ["gal"])
    assert not (tmp_path / "etc").exists()


def test_concurrent_enrollment_is_serialised(client, synth_data):
    from concurrent.futures import ThreadPoolExecutor

    p = files_of(synth_data, "hum", 1)[0].read_bytes()

    def enroll(k):
        return client.post(f"/gallery/c{k % 3}", files=[("files", ("x.wav", p))]).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(enroll, range(12)))
    assert codes == [200] * 12
    assert client.get("/gallery").json()["classes"] == {"c0": 4, "c1": 4, "c2": 4}


def test_serve_runs_each_request_on_one_math_thread(trained, monkeypatch):
    """Requests run side by side; each one's BLAS and torch pools must not also spread over every core."""
    import torch
    import uvicorn
    from threadpoolctl import threadpool_info, threadpool_limits
    from typer.testing import CliRunner

    from soundtwin.cli import app

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(sockets[0].getsockname()[1]))
    before_torch = torch.get_num_threads()
    with threadpool_limits(None):  # restores the BLAS pools when the test ends
        try:
            torch.set_num_threads(2)
            result = CliRunner().invoke(app, ["serve", str(trained[0]), "--port", "8123"])
            assert result.exit_code == 0, result.output
            assert started == [8123]
            assert torch.get_num_threads() == 1
            blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
            assert blas and all(n == 1 for n in blas)
        finally:
            torch.set_num_threads(before_torch)
