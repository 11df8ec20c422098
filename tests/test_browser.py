"""End to end in a real headless Chromium: upload two clips, click Compare, read the decision."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium and chromium-driver for the browser test")
    pytest.skip("Debian's chromium and chromium-driver are not installed here (CI installs them)",
                allow_module_level=True)

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from soundtwin.server import create_app  # noqa: E402
from soundtwin.runtime.torch_runtime import Verifier  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(trained, tmp_path):
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(trained[0], tmp_path / "gal"), host="127.0.0.1", port=port,
                                        log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(10)


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


def test_page_compares_two_uploaded_clips(server, browser, trained, synth_data, tmp_path):
    a, b = sorted((synth_data / "test" / "whistle").glob("*.wav"))[:1] + sorted((synth_data / "test" / "knock").glob("*.wav"))[:1]
    expected = Verifier.load(trained[0], cache_dir=False).verify(a, b)
    browser.get(server + "/")
    WebDriverWait(browser, 20).until(lambda d: "preset" in d.find_element(By.ID, "card").text)
    browser.find_element(By.ID, "fileA").send_keys(str(a))
    browser.find_element(By.ID, "fileB").send_keys(str(b))
    WebDriverWait(browser, 20).until(EC.element_to_be_clickable((By.ID, "compareBtn"))).click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "decision").text in ("Same sound", "Different sounds", "Error"))
    shown = browser.find_element(By.ID, "decision").text
    assert shown == ("Same sound" if expected.same else "Different sounds")
    assert f"{expected.score:.3f}" in browser.find_element(By.ID, "numbers").text
    out = Path(os.environ.get("SOUNDTWIN_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(out / "compare.png"))
    assert (out / "compare.png").stat().st_size > 10_000


def test_api_docs_render_offline(server, browser):
    """/docs draws Swagger UI from files the server ships (no CDN): its operations appear."""
    browser.get(server + "/docs")
    WebDriverWait(browser, 20).until(lambda d: "/compare" in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "soundtwin API" in browser.title and "/gallery/{label}" in text
    scripts = [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script") if s.get_attribute("src")]
    assert scripts and all(src.startswith(server) for src in scripts)
