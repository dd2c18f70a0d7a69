"""Browser fixtures: one daemon serving the web app and one Chromium for every browser test.

Package-scoped: Playwright's synchronous API keeps an event loop running on the main thread
while it is open, so it is closed once the browser tests are done and the tests after them
(in the same process) can run their own loops."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_sync  # a missing Playwright must fail, not skip
import pytest

from pbxbridge.config import WebConfig
from tests.e2e.browser import ARTIFACTS, CHROMIUM_ARGS, OPEN_CONTEXTS, REPO_ROOT, SCREENSHOTS, DaemonThread, Floor
from tests.fixtures_web import (  # noqa: F401 - fixtures
    PopulatedTemplates,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)


@pytest.fixture(scope="package")
def lab_simulator(shared_dir: Path) -> Iterator[int]:
    """``pbxbridge simulate`` replaying the burst of twelve callers forever, as new calls each pass."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pbxbridge", "simulate", str(shared_dir / "13-burst.ami"), "--port", "0",
         "--loop", "--fresh-ids", "--retime", "--speed", "1", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        assert match, f"pbxbridge simulate said {line!r}"
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless."""
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (apt-get install -y chromium)"
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def floor(
    tmp_path_factory: pytest.TempPathFactory,
    shared_dir: Path,
    whisper_transcript: Any,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
    lab_simulator: int,
    chromium: Any,
) -> Iterator[Floor]:
    """The daemon serving the web app over a database holding every captured call."""
    from pbxbridge.db.engine import upgrade

    db = tmp_path_factory.mktemp("e2e") / "pbxbridge.sqlite3"
    url = f"sqlite:///{db}"
    upgrade(url)
    config = web_config(url, shared_dir)
    # Port 0: the web app binds a free port itself; the site's address is read back from it.
    config = dataclasses.replace(config, web=WebConfig(host="127.0.0.1", port=0, secret_key="e2e-secret-key"))
    daemon = DaemonThread(config, lab_simulator, shared_dir)
    data = daemon.run(populated_templates.fill(config, shared_dir, whisper_transcript), 120)
    daemon.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield Floor(f"http://127.0.0.1:{daemon.web_port}", data, daemon, chromium)
    finally:
        daemon.stop()



@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A failing browser test leaves a screenshot of each page it had open under tests/artifacts/."""
    try:
        return (yield)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, context in enumerate(OPEN_CONTEXTS):
            for j, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(ARTIFACTS / f"{item.name}-{i}-{j}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - a page that died cannot be shot; the failure itself stands
                    pass
        raise
    finally:
        for context in OPEN_CONTEXTS:
            try:
                context.close()
            except Exception:  # noqa: BLE001 - already closed by the test
                pass
        OPEN_CONTEXTS.clear()
