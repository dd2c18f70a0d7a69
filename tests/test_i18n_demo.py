"""`pbxbridge demo` with no configuration at all: the sign-in page in the browser's language."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

WAIT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, accept_language: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept-Language": accept_language})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_demo_serves_the_sign_in_page_in_the_browsers_language(tmp_path: Path) -> None:
    port = _free_port()
    # No config file anywhere: an empty working directory and no PBXBRIDGE_CONFIG.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBXBRIDGE_")}
    env.update({
        "PBXBRIDGE_WEB__PORT": str(port),
        "PBXBRIDGE_ROUTING__AGI_PORT": "0",
        "PBXBRIDGE_TRANSCRIPTION__WORKERS": "0",
    })
    demo = subprocess.Popen(
        [sys.executable, "-m", "pbxbridge", "demo", "--speed", "50", "--db", f"sqlite:///{tmp_path / 'demo.sqlite3'}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert demo.poll() is None, demo.communicate()[1]
            try:
                if _get(base + "/healthz", "ru")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the demo's web app did not come up"
            time.sleep(0.2)
        status, russian = _get(base + "/login", "ru-RU,ru;q=0.9,en;q=0.8")
        assert status == 200
        assert '<html lang="ru">' in russian
        assert "<h1>Вход в pbxbridge</h1>" in russian and "Пароль" in russian and ">Войти</button>" in russian
        status, english = _get(base + "/login", "en-US,en;q=0.9")
        assert status == 200
        assert '<html lang="en">' in english
        assert "<h1>Sign in to pbxbridge</h1>" in english and "Password" in english
        # Each page loads the catalog of its own language for its scripts.
        assert re.search(r'src="/static/i18n/ru\.js\?v=\w+"', russian)
        assert re.search(r'src="/static/i18n/en\.js\?v=\w+"', english)
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.communicate()
