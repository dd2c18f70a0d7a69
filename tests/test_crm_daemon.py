"""The running daemon delivers by itself: a PBX's calls over AMI reach a fake Bitrix24 and a webhook
receiver with no command run, each once, while the journal takes them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.config import (
    Bitrix24Config,
    Config,
    CrmConfig,
    DatabaseConfig,
    PbxConfig,
    RecordingsConfig,
    RoutingConfig,
    TranscriptionConfig,
    WebConfig,
    WebhookConfig,
)
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fakes_webhook import ServerThread, WebhookReceiver
from tests.fixtures_ami import trace_path, wait_until

USER, SECRET = "pbxbridge", "s3cret"
HOOK_SECRET = "whsec-daemon-55ab"


def test_the_live_daemon_delivers_each_call_once_without_a_command(db_url: str, shared_dir: Path) -> None:
    fake = FakeBitrix24(drain_per_s=1000)
    receiver = WebhookReceiver(HOOK_SECRET)
    portal = ServerThread(fake.app).start()
    hook = ServerThread(receiver.app).start()

    async def go() -> None:
        traces = [load_trace(trace_path(shared_dir, name)) for name in ("01-inbound-answered.ami", "03-inbound-abandoned.ami")]
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET)
        await sim.start()
        config = Config(
            database=DatabaseConfig(url=db_url),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username=USER, secret=SECRET)],
            web=WebConfig(port=0, secret_key="k" * 32),
            routing=RoutingConfig(agi_port=0),
            transcription=TranscriptionConfig(workers=0),
            crm=CrmConfig(bitrix24=Bitrix24Config(webhook_url=fake.webhook_url(portal.url), default_user="201",
                                                  requests_per_s=100)),
            webhooks=[WebhookConfig(url=f"{hook.url}/hook", secret=HOOK_SECRET, name="bot",
                                    events=("call.finished", "call.missed"))],
        )
        daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05}, retry_initial_s=0.05)
        assert "pbxbridge.crm.daemon" in attach_domains(daemon)
        try:
            await daemon.start()
            await sim.wait_replayed()
            # Three webhooks and the two calls' last Bitrix24 request (the recording comes after the finish).
            await wait_until(lambda: len(receiver.received) >= 3 and sum(1 for m, _ in fake.log if m == "finish") >= 2
                             and any(m == "attachRecord" for m, _ in fake.log), timeout=60)
        finally:
            await daemon.stop()
            await sim.stop()

    try:
        asyncio.run(go())
    finally:
        portal.stop()
        hook.stop()
    assert not fake.refused and len(fake.calls) == 2
    assert sorted(m for m, _ in fake.log) == ["attachRecord", "finish", "finish", "register", "register"]
    assert sorted(d["event"] for d in receiver.received) == ["call.finished", "call.finished", "call.missed"]
