"""What the browser tests share: the daemon on a thread of its own, and signing in from Chromium.

The daemon follows two PBXes: one simulator in this process that answers
click-to-call Originates with the captured click-to-call (pjsip-02, rewritten
for the request), and ``pbxbridge simulate`` replaying the captured burst of
callers in a loop, so that the wallboard has live calls to show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

from pbxbridge.ami.listener import ListenerState
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.config import Config, PbxConfig
from pbxbridge.routing.sim_originate import OriginateSimulation
from pbxbridge.web.app import WebServer
from tests.fixtures_web import PASSWORD, WebData

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
# Where a failing browser test leaves a screenshot of every page it had open.
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
# The two widths every page is checked at: a desktop, and a phone on the road.
DESKTOP = 1280
PHONE = 390
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Headless chromium has no sound card; play without one.
    "--autoplay-policy=no-user-gesture-required",
]
SEARCH_WORD = "информацию"  # another form of «информация», said 20 s into the first call
WAIT_MS = 15_000
# Bound on anything awaited on the daemon's loop: a hang fails instead of blocking CI.
WAIT_S = 30.0


class DaemonThread:
    """The daemon, with the web app attached, on its own event loop in a thread."""

    def __init__(self, config: Config, lab_port: int, traces_dir: Path) -> None:
        self.config = config
        self.lab_port = lab_port
        # The sales PBX answers an Originate as the captured Asterisk did, at once (speed 0).
        self.originate = OriginateSimulation(traces_dir=traces_dir)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pbxbridge-daemon", daemon=True)
        self.daemon: Daemon | None = None
        self.simulator: AmiSimulator | None = None

    def start(self) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        self.run(self._start(), 60)

    async def _start(self) -> None:
        # The sales PBX: nothing replayed, but it takes Originates as Asterisk does.
        self.simulator = AmiSimulator([], speed=0, host="127.0.0.1", port=0)
        self.originate.install(self.simulator)
        await self.simulator.start()
        pbxes = [
            PbxConfig(name="main", host="127.0.0.1", port=self.simulator.port),
            PbxConfig(name="lab", host="127.0.0.1", port=self.lab_port),
        ]
        # FastAGI on whatever port is free: no test here speaks AGI.
        routing = dataclasses.replace(self.config.routing, agi_port=0)
        self.config = dataclasses.replace(self.config, pbx=pbxes, routing=routing)
        self.daemon = Daemon(self.config, listener_options={"backoff_initial_s": 0.2, "backoff_cap_s": 1.0})
        # Routing (line states, click-to-call) and the web app; transcription workers have their own tests.
        attach_domains(self.daemon, ("pbxbridge.routing.daemon", "pbxbridge.web.daemon"))
        await self.daemon.start()

    @property
    def web_port(self) -> int:
        """The port the web app bound (it was asked for any free one)."""
        assert self.daemon is not None
        (server,) = [c.server for c in self.daemon.components if isinstance(getattr(c, "server", None), WebServer)]
        return server.port

    async def logged_in(self) -> None:
        """Wait until every PBX's AMI session is up."""
        assert self.daemon is not None
        for link in self.daemon.links.values():
            assert link.listener is not None
            await asyncio.wait_for(link.listener.wait_for_state(ListenerState.LOGGED_IN), WAIT_S)

    async def calls_played_and_journaled(self) -> None:
        """Wait until the sales PBX has played every click-to-call and the daemon has journaled what ended."""
        assert self.daemon is not None
        await asyncio.wait_for(self.originate.wait_played(), WAIT_S)
        # Asterisk answers a Ping after every event it sent before on that session:
        # once the answer is in, the daemon has read (and tracked) all of them.
        await asyncio.wait_for(self.daemon.send_action("main", {"Action": "Ping"}), WAIT_S)
        await asyncio.wait_for(self.daemon.flush(), WAIT_S)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the daemon's loop and wait for it (the browser's loop owns this thread)."""
        if not self.thread.is_alive():
            self.thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def _stop() -> None:
            if self.daemon is not None:
                await self.daemon.stop()
            if self.simulator is not None:
                await self.simulator.stop()

        try:
            self.run(_stop(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@dataclasses.dataclass(slots=True)
class Floor:
    """Everything a browser test needs: the site's address, test data, the daemon."""

    base_url: str
    data: WebData
    daemon: DaemonThread
    browser: Any


# Contexts opened by the running test: screenshotted if it fails, closed after it.
OPEN_CONTEXTS: list[Any] = []


def new_context(floor: Floor, width: int = 1360, locale: str = "en-US") -> Any:
    """A fresh browser profile sending ``locale`` as its Accept-Language; CSP bypassed only so
    that the test's own probes can run in the page."""
    height = 900 if width > PHONE else 844
    context = floor.browser.new_context(
        viewport={"width": width, "height": height}, base_url=floor.base_url, bypass_csp=True, locale=locale,
    )
    OPEN_CONTEXTS.append(context)
    return context


def sign_in(floor: Floor, username: str, next_path: str = "/", width: int = 1360, locale: str = "en-US") -> Any:
    """A new browser context signed in through the form; returns its page."""
    context = new_context(floor, width, locale)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(next_path)
    page.wait_for_selector("form[action='/login']")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector("header .who")
    return page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
