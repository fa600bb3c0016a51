"""The video player in a real browser: voila serves notebooks/06_video_player.ipynb, Chromium drives it.

Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``) and the
Python packages ``playwright`` and ``voila`` (the ``dev`` extra); the test is skipped, with
the reason, when one is missing. Playwright's own browser download is not used.

Everything stays on loopback: voila listens on 127.0.0.1 at a free port and Chromium runs
headless with background networking, component updates, sync and QUIC off, in a fresh
profile. The notebook runs its small path (``STVG_LAB_SMALL=1``: 12 generated clips,
demo predictions). The screenshot lands in the test's tmp folder; with
``STVG_LAB_UPDATE_SCREENSHOT=1`` it is also copied to ``docs/player.png`` for the README.
The voila process group (server and kernel) is killed at the end whatever happens.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_video_player.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
SERVER_TIMEOUT_S = 40
RENDER_TIMEOUT_MS = 60_000

_missing = [
    reason
    for reason, absent in (
        (f"{CHROMIUM} not found (apt-get install chromium)", not CHROMIUM.is_file()),
        ("the playwright package is not installed (pip install -e '.[dev]')", importlib.util.find_spec("playwright") is None),
        ("the voila package is not installed (pip install -e '.[dev]')", importlib.util.find_spec("voila") is None),
    )
    if absent
]
if _missing:
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason="; ".join(_missing))]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode} before serving; log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # loopback only
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"voila did not answer {url} within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, the process group this test started (voila and its kernel)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def voila_url(tmp_path):
    port = _free_port()
    log = tmp_path / "voila.log"
    env = {
        **os.environ,
        "STVG_LAB_SMALL": "1",
        "HF_HUB_OFFLINE": "1",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # ignore the user's server config
    }
    cmd = [
        sys.executable, "-m", "voila", str(NOTEBOOK.relative_to(ROOT)),
        "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_http(url, proc, log, SERVER_TIMEOUT_S)
        yield url
    finally:
        _stop(proc)


def _image_bytes(page, img) -> str:
    """The displayed PNG, read back through its blob URL, as base64 (compares the bytes, not the URL)."""
    return page.evaluate(
        """async (img) => {
            const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
            let s = ""; for (const b of buf) s += String.fromCharCode(b);
            return btoa(s);
        }""",
        img.element_handle(),
    )


def test_player_in_chromium(voila_url, tmp_path):
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 1200},
        )
        try:
            page = ctx.new_page()
            page.goto(voila_url, wait_until="domcontentloaded")
            img = page.locator("img.widget-image").first
            img.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
            page.wait_for_function("(el) => el.src && el.naturalWidth > 0", arg=img.element_handle(), timeout=RENDER_TIMEOUT_MS)
            readout = page.locator(".widget-html-content", has_text="original #").first
            readout.wait_for(timeout=RENDER_TIMEOUT_MS)
            before_bytes, before_text = _image_bytes(page, img), readout.inner_text()
            assert "demo" in page.content()  # demo predictions are labelled as such

            frame_slider = page.locator(".widget-hslider", has=page.locator("label", has_text="frame")).first
            handle = frame_slider.locator(".noUi-handle").first
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            # _render sets the image before the readout, so a new readout means the new image was sent
            page.wait_for_function(
                "([el, old]) => el.innerText !== old", arg=[readout.element_handle(), before_text], timeout=15_000
            )
            after_bytes, after_text = _image_bytes(page, img), readout.inner_text()
            assert after_text != before_text
            assert after_bytes != before_bytes, "moving the slider did not change the image"

            player = page.locator(".widget-vbox", has=img).first  # the Player's outer VBox
            player.screenshot(path=str(tmp_path / "player.png"))

            # Play drives the slider through jslink, in the browser; the kernel then re-renders
            paused_text = readout.inner_text()
            play_button = page.locator(".widget-play button").first
            play_button.click()
            page.wait_for_function(
                "([el, old]) => el.innerText !== old", arg=[readout.element_handle(), paused_text], timeout=15_000
            )
            play_button.click()  # pause
        finally:
            ctx.close()
    shot = tmp_path / "player.png"
    assert shot.stat().st_size > 10_000
    if os.environ.get("STVG_LAB_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "player.png")
    assert time.monotonic() - t0 < 90
