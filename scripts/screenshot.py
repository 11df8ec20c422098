"""Take the README's screenshot: serve a model, compare two clips in headless Chromium, save a PNG.

    python scripts/screenshot.py MODEL_DIR CLIP_A CLIP_B docs/screenshot.png
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from soundtwin.server import create_app


def main(model: str, a: str, b: str, out: str) -> None:
    from pathlib import Path

    a, b = str(Path(a).resolve()), str(Path(b).resolve())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1100,760"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        drv.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(drv, 20).until(lambda d: "preset" in d.find_element(By.ID, "card").text)
        drv.find_element(By.ID, "fileA").send_keys(a)
        drv.find_element(By.ID, "fileB").send_keys(b)
        WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "compareBtn").is_enabled())
        time.sleep(0.5)
        drv.find_element(By.ID, "compareBtn").click()
        WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, "decision").text in ("Same sound", "Different sounds"))
        drv.save_screenshot(out)
        print(drv.find_element(By.ID, "decision").text, "|", drv.find_element(By.ID, "numbers").text)
    finally:
        drv.quit()
        srv.should_exit = True


if __name__ == "__main__":
    main(*sys.argv[1:5])
