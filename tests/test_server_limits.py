"""The service under hostile or failing conditions, on a real uvicorn server on 127.0.0.1.

Bounded: every request has a timeout, loops are short, the server is stopped at the end.
"""

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import tone

httpx = pytest.importorskip("httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(y, sr=16000, fmt="WAV", **kw) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, **kw)
    return buf.getvalue()


def recv_reply(s: socket.socket, first: bytes = b"") -> str:
    """The server's whole reply (it closes the connection after refusing a body)."""
    s.settimeout(5)
    data = first
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            part = s.recv(4096)
            if not part:
                break
            data += part
    except OSError:
        pass
    return data.decode(errors="replace")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, model: Path, gallery: Path, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SOUNDTWIN_CACHE": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soundtwin.cli", "serve", str(model), "--gallery", str(gallery), "--port",
             str(self.port), "--max-seconds", "5", "--max-bytes", "2000000", "--max-request-bytes", "4000000",
             "--upload-timeout", "2", "--max-files", "4", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start: " + (self.proc.stdout.read() if self.proc.stdout else ""))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server(trained, tmp_path):
    s = Server(trained[0], tmp_path / "gal", tmp_path)
    yield s
    s.stop()


# -- 2. small uploads that decode to a lot ---------------------------------------------------------
def test_upload_bombs_are_refused_from_their_header(server):
    # 8 channels at 655,350 Hz: refused by rate before any decoding
    y = np.zeros((6554, 8), np.float32)
    y[::50] = 0.1
    r = httpx.post(server.url + "/embed", files={"file": ("bomb.flac", wav_bytes(y, 655350, "FLAC"))}, timeout=30)
    assert r.status_code == 413 and "655350 Hz is above" in r.json()["detail"]
    # a minute of near-silence compresses to a few KB; the header says 60 s > the 5 s limit
    quiet = np.zeros(60 * 8000, np.float32)
    quiet[::1000] = 0.01
    blob = wav_bytes(quiet, 8000, "FLAC")
    assert len(blob) < 200_000
    before = rss_mb(server.proc.pid)
    r = httpx.post(server.url + "/gallery/x", files=[("files", (f"q{k}.flac", blob)) for k in range(3)], timeout=30)
    assert r.status_code == 413 and "60.0 s is longer than the 5 s limit" in r.json()["detail"]
    assert rss_mb(server.proc.pid) - before < 100
    r = httpx.post(server.url + "/gallery/x", files=[("files", (f"t{k}.wav", wav_bytes(tone()))) for k in range(5)],
                   timeout=30)
    assert r.status_code == 413 and "5 files in one request; at most 4" in r.json()["detail"]


# -- 3. the body limit bounds what is received ----------------------------------------------------
def test_a_body_over_the_limit_is_refused_by_its_header_and_while_streaming(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 1073741824\r\n\r\n")
        reply = recv_reply(s)
    assert reply.startswith("HTTP/1.1 413") and "byte limit" in reply
    # no Content-Length: chunks until the server says no; it must stop us near the 4 MB limit
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))  # a well-formed part whose file never ends
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        reply = b""
        try:
            while sent < 64_000_000:
                s.sendall(chunk)
                sent += 65536
                s.setblocking(False)
                try:
                    reply += s.recv(4096)
                except BlockingIOError:
                    pass
                s.setblocking(True)
                if reply:
                    break
        except OSError:
            pass
        reply = recv_reply(s, reply)
    assert reply.startswith("HTTP/1.1 413") and "byte limit" in reply and sent < 16_000_000  # 4 MB + socket buffers


# -- 6. one slow request does not stall the others ------------------------------------------------
def test_healthz_stays_fast_and_a_trickling_upload_is_timed_out(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 100000\r\n\r\n--b\r\n")
    t0 = time.monotonic()
    worst = 0.0
    busy = threading.Thread(target=lambda: [httpx.post(server.url + "/compare", timeout=30, files={
        "a": wav_bytes(tone(300, seconds=4.5)), "b": wav_bytes(tone(500, seconds=4.5))}) for _ in range(6)])
    busy.start()
    while time.monotonic() - t0 < 1.5:
        t = time.monotonic()
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - t)
        try:
            s.sendall(b"a")  # one byte now and then: never finishes
        except OSError:
            break
        time.sleep(0.05)
    busy.join()
    reply = recv_reply(s)
    s.close()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within 2 s" in reply
    assert worst < 0.5


# -- 7. memory follows disk: a failed save changes nothing ----------------------------------------
def test_a_failed_save_changes_nothing_and_verify_during_delete_never_fails(server, synth_data, tmp_path):
    clip = sorted((synth_data / "test" / "hum").glob("*.wav"))[0].read_bytes()
    knock = sorted((synth_data / "test" / "knock").glob("*.wav"))[0].read_bytes()
    url = server.url
    assert httpx.post(url + "/gallery/hum", files=[("files", ("h.wav", clip))], timeout=30).status_code == 200
    assert httpx.post(url + "/gallery/knock", files=[("files", ("k.wav", knock))], timeout=30).status_code == 200
    lock = tmp_path / "gal" / ".lock"
    lock.unlink()
    lock.mkdir()  # the next save cannot take the lock: stands for a read-only or full disk (we run as root)
    r = httpx.post(url + "/gallery/x", files=[("files", ("x.wav", clip))], timeout=30)
    assert r.status_code == 500 and "cannot save the gallery" in r.json()["detail"]
    assert "x" not in httpx.get(url + "/gallery", timeout=5).json()["classes"]
    r = httpx.delete(url + "/gallery/knock", timeout=30)
    assert r.status_code == 500
    assert "knock" in httpx.get(url + "/gallery", timeout=5).json()["classes"]
    lock.rmdir()
    # verify while another client removes and re-enrolls the class: answers are 200 or 404, never 500
    codes: list[int] = []

    def churn():
        for _ in range(4):
            httpx.delete(url + "/gallery/knock", timeout=30)
            httpx.post(url + "/gallery/knock", files=[("files", ("k.wav", knock))], timeout=30)

    t = threading.Thread(target=churn)
    t.start()
    while t.is_alive():
        codes.append(httpx.post(url + "/verify", data={"label": "knock"}, files={"file": clip}, timeout=30).status_code)
    t.join()
    assert codes and set(codes) <= {200, 404}
    disk = json.loads((tmp_path / "gal" / "gallery.json").read_text())
    assert sorted(set(disk["labels"])) == sorted(httpx.get(url + "/gallery", timeout=5).json()["classes"])
