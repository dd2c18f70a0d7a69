"""The web app in a real browser (Debian's chromium through Playwright), served by the daemon.

The daemon follows two PBXes: one simulator in this process that answers
click-to-call Originates with the captured click-to-call (pjsip-02, rewritten
for the request), and ``pbxbridge simulate`` replaying the captured burst of
callers in a loop, so that the wallboard has live calls to show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_sync  # noqa: E402 - a missing Playwright must fail, not skip
import pytest

from pbxbridge.ami.listener import ListenerState
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.config import Config, PbxConfig, WebConfig
from pbxbridge.routing.sim_originate import OriginateSimulation
from pbxbridge.web.app import WebServer
from tests.fixtures_web import (  # noqa: F401 - fixtures
    PASSWORD,
    PopulatedTemplates,
    WebData,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless."""
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (apt-get install -y chromium)"
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
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


def new_context(floor: Floor) -> Any:
    """A fresh browser profile; CSP bypassed only so that the test's own probes can run in the page."""
    return floor.browser.new_context(viewport={"width": 1360, "height": 900}, base_url=floor.base_url, bypass_csp=True)


def sign_in(floor: Floor, username: str, next_path: str = "/") -> Any:
    """A new browser context signed in through the form; returns its page."""
    context = new_context(floor)
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


def test_each_role_lands_on_its_pages(floor: Floor) -> None:
    context = new_context(floor)
    login = context.new_page()
    login.goto("/calls")
    assert "/login" in login.url
    shot(login, "login")
    login.fill("input[name=username]", "olga")
    login.fill("input[name=password]", "not the password")
    login.click("button[type=submit]")
    assert "Wrong username or password" in login.inner_text(".error")
    context.close()

    expected = {
        "olga": ("/calls", {"Calls", "Clients", "KPI", "Wallboard", "Routing", "Audit log"}),
        "ivan": ("/calls", {"Calls", "Clients", "Wallboard"}),
        "sergey": ("/wallboard", {"Wallboard", "Routing"}),
    }
    for username, (home, nav) in expected.items():
        page = sign_in(floor, username)
        page.wait_for_url(f"**{home}")
        assert set(page.locator("nav.main a").all_inner_texts()) == nav
        if home == "/calls":
            page.wait_for_selector("#calls-table tbody tr")
        shot(page, f"home-{username}")
        page.context.close()

    head = sign_in(floor, "olga", "/kpi")
    head.wait_for_selector("#chart-managers")
    head.wait_for_selector("#lost-leads table")
    shot(head, "kpi")
    head.goto("/audit")
    head.wait_for_selector("#audit-page tbody tr")
    assert "sign in" in head.inner_text("#audit-page")
    shot(head, "audit")
    head.goto("/clients")
    head.wait_for_selector("#clients-page tbody tr")
    shot(head, "clients")
    head.context.close()

    ops = sign_in(floor, "sergey", "/routing")
    ops.wait_for_selector("#rules-form")
    ops.fill("input[name=max_waiting]", "3")
    ops.click("text=+ Add group")
    ops.fill("tr.group-row input[name=g_name]", "north")
    ops.fill("tr.group-row input[name=g_members]", "201, 202")
    ops.click("#rules-form button[type=submit]")
    ops.wait_for_selector("text=Rules saved")
    ops.reload()
    ops.wait_for_selector("tr.group-row")
    assert ops.input_value("input[name=max_waiting]") == "3"
    assert ops.input_value("tr.group-row input[name=g_members]") == "201, 202"
    shot(ops, "routing")
    # ops has no journal: its page answers 403.
    assert ops.goto("/calls").status == 403
    ops.context.close()


def test_search_a_russian_word_and_play_from_the_hit(floor: Floor) -> None:
    page = sign_in(floor, "ivan", "/calls")
    page.wait_for_selector("#calls-table tbody tr")
    page.fill("input[name=q]", SEARCH_WORD)
    page.click("#filters button[type=submit]")
    hit = page.wait_for_selector("a.play-hit")
    assert "информация" in page.inner_text("td.hit mark")
    shot(page, "search")
    href = hit.get_attribute("href")
    match = re.search(r"[?&]t=([\d.]+)", href or "")
    assert match, href
    offset = float(match.group(1))
    assert offset > 10  # said well into the call, so a seek is visible

    hit.click()
    page.wait_for_url(re.compile(rf"/calls/{floor.data.ivan_call_id}\?t="))
    page.wait_for_selector("#waveform canvas, #waveform div")
    page.wait_for_function(f"document.getElementById('audio').currentTime >= {offset - 0.05}")
    # The segment holding the word is the one highlighted.
    page.wait_for_selector(".segment.current")
    assert "информация" in page.inner_text(".segment.current").lower()
    page.click("#play")
    page.wait_for_function(f"document.getElementById('audio').currentTime > {offset + 0.3}")
    position = page.evaluate("document.getElementById('audio').currentTime")
    assert offset <= position < offset + 10
    page.click(".speeds button[data-rate='2']")
    assert page.evaluate("document.getElementById('audio').playbackRate") == 2
    shot(page, "player")

    # Clicking a word plays from it.
    page.click("#play")  # pause
    first_word = page.locator(".segment .word").first
    start = float(first_word.get_attribute("data-start") or "0")
    first_word.click()
    page.wait_for_function(
        f"Math.abs(document.getElementById('audio').currentTime - {start}) < 1.5"
        f" && document.getElementById('audio').currentTime < {offset - 1}"
    )
    page.context.close()


def test_manager_starts_click_to_call_from_a_card(floor: Floor, expected: dict[str, Any]) -> None:
    card_api = f"/api/clients/{floor.data.ivan_client_id}"
    page = sign_in(floor, "ivan", f"/clients/{floor.data.ivan_client_id}")
    page.wait_for_selector(".timeline-item")
    before = {call["id"] for call in page.request.get(card_api).json()["calls"]}
    page.fill("textarea[name=notes]", "Asked for the price list; call back on Monday.")
    page.click("#card-form button[type=submit]")
    page.wait_for_selector("text=Saved.")
    page.click("button.call-button[data-number='+79161110001']")
    page.wait_for_selector("text=your handset")
    shot(page, "client-card")
    (action,) = floor.daemon.originate.received
    assert action["Channel"] == "Local/203@from-internal"
    assert action["Exten"] == "79161110001"
    assert action["Context"] == "from-internal"

    # The PBX plays the captured click-to-call for this request: Ivan's handset (203)
    # rings and answers, the client answers and they talk. It lands on the client's card.
    floor.daemon.run(floor.daemon.calls_played_and_journaled(), 60)
    (call,) = [c for c in page.request.get(card_api).json()["calls"] if c["id"] not in before]
    truth = expected["pjsip-02-click-to-call"]["calls"][0]
    assert (call["direction"], call["status"], call["originated"]) == (truth["direction"], truth["status"], True)
    assert (call["manager"], call["client_number"], call["client_id"]) == ("203", "+79161110001", floor.data.ivan_client_id)
    for field in ("wait_s", "talk_s"):
        low, high = truth[field]
        assert low <= call[field] <= high, field
    # As Ivan sees it on the card, after a reload.
    page.reload()
    item = page.locator(".timeline-item", has=page.locator(f"a[href='/calls/{call['id']}']"))
    item.wait_for()
    assert "status-answered" in (item.get_attribute("class") or "")
    text = item.inner_text()
    # Direction, status and who placed it ("Name (203)", or the bare extension without a name).
    assert "↗ out" in text and "answered" in text and "203" in text, text
    assert page.input_value("textarea[name=notes]") == "Asked for the price list; call back on Monday."
    shot(page, "client-card-after-call")
    page.context.close()


def test_wallboard_shows_calls_as_the_trace_replays(floor: Floor) -> None:
    page = sign_in(floor, "sergey", "/wallboard")
    page.wait_for_selector("#live-status.on")
    # The looping burst keeps callers coming: a call in progress shows up, pushed over the WebSocket.
    page.wait_for_selector("#live-calls tr.live-call", timeout=45_000)
    page.wait_for_selector("#lines .line")
    numbers = page.locator("#live-calls tr.live-call td:nth-child(2)").all_inner_texts()
    assert any(n.lstrip("+").startswith("7916555") for n in numbers), numbers
    shot(page, "wallboard")

    # Both PBXes' AMI sessions are up and the database answers: the daemon is ready.
    floor.daemon.run(floor.daemon.logged_in(), 60)
    ready = page.request.get("/readyz")
    checks = ready.json()["checks"]
    assert ready.status == 200, checks
    assert checks["ami"] == {"main": "logged in", "lab": "logged in"} and checks["database"] == "ok"
    page.context.close()


def test_manager_cannot_open_another_managers_call(floor: Floor) -> None:
    page = sign_in(floor, "petr", "/calls")
    response = page.goto(f"/calls/{floor.data.ivan_call_id}")
    assert response is not None and response.status == 403
    assert "another manager" in page.inner_text("main")
    shot(page, "forbidden")
    api = page.request.get(f"/api/calls/{floor.data.ivan_call_id}")
    assert api.status == 403
    own = page.goto(f"/calls/{floor.data.petr_call_id}")
    assert own is not None and own.status == 200
    page.wait_for_selector("#waveform")
    page.context.close()
