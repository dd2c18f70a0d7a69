"""amoCRM from the shared captures: every call with a client lands once, on the card that has its
number or as an unsorted lead, with its direction, talk seconds and outcome; amoCRM's 7 requests a
second (429 beyond) only slow the delivery down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pbxbridge.cli.main import main
from tests.fakes_amocrm import TOKEN, FakeAmoCrm
from tests.fakes_webhook import ServerThread
from tests.test_crm_bitrix24 import scripted_calls

STATUSES = {"answered": 4, "busy": 7}
# Inbound answered and abandoned, outbound answered and busy, a callback, a transfer, a click-to-call to a busy line.
SCENARIOS = ("01-inbound-answered", "03-inbound-abandoned", "06-outbound-answered", "08-outbound-busy",
             "11-missed-then-callback", "12-blind-transfer", "pjsip-03-click-to-call-busy")


def test_every_call_lands_once_on_its_card_or_in_unsorted(
    db_url: str, shared_dir: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    scripted = scripted_calls({name: expected[name] for name in SCENARIOS})
    # Every other client already has a card; the rest are new numbers.
    known = {f"+{call['client']}" for call in scripted[::2]}
    fake = FakeAmoCrm(contacts=known)
    server = ServerThread(fake.app).start()
    try:
        config = tmp_path / "pbxbridge.toml"
        config.write_text(
            f"[crm]\nretry_initial_ms = 100\n\n[crm.amocrm]\nbase_url = \"{server.url}\"\ntoken = \"{TOKEN}\"\n",
            encoding="utf-8",
        )
        traces = [str(shared_dir / f"{name}.ami") for name in SCENARIOS]
        assert main(["replay", *traces, "--db", db_url, "--config", str(config)]) == 0
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "120", "--db", db_url,
                     "--config", str(config)]) == 0
    finally:
        server.stop()
    assert not fake.refused
    landed = fake.calls + [
        {**u["metadata"], "direction": "inbound" if u["metadata"]["from"] == u["metadata"]["phone"] else "outbound"}
        for u in fake.unsorted
    ]
    assert len(landed) == len(scripted)
    uniq = [c["uniq"] for c in landed]
    assert len(set(uniq)) == len(uniq) and all(u.startswith("main:") for u in uniq)
    by_key = {(c["phone"], c["direction"]): c for c in fake.calls}
    unsorted = {(u["metadata"]["phone"], "inbound" if u["metadata"]["from"] == u["metadata"]["phone"] else "outbound")
                for u in fake.unsorted}
    for truth in scripted:
        key = (f"+{truth['client']}", truth["direction"])
        if key[0] not in known:
            assert key in unsorted, truth
            continue
        call = by_key[key]
        assert call["source"] == "pbxbridge"
        assert call["call_status"] == STATUSES.get(truth["status"], 6), truth
        if "talk_s" in truth:
            low, high = truth["talk_s"]
            assert low - 2 <= call["duration"] <= high + 2, truth
    # More than 7 requests a second were asked of it: some were told 429 and went through later.
    assert fake.throttled > 0
