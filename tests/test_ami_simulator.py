"""The AMI simulator speaks to clients as Asterisk does, replaying captured streams."""

from __future__ import annotations

import asyncio
from pathlib import Path

from panoramisk import Manager

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.simulator import AmiSimulator, ClientSession
from pbxbridge.ami.traces import load_trace
from tests.fixtures_ami import RawAmiClient, live_linkedids, trace_path, wait_until

USER, SECRET = "pbxbridge", "s3cret"


async def test_panoramisk_logs_in_pings_and_logs_off(shared_dir: Path) -> None:
    path = trace_path(shared_dir, "01-inbound-answered.ami")
    sim = AmiSimulator([path], speed=1000, username=USER, secret=SECRET)
    await sim.start()
    loop = asyncio.get_running_loop()
    logged_in: asyncio.Future[bool] = loop.create_future()
    events: list[str] = []
    manager = Manager(
        host="127.0.0.1", port=sim.port, username=USER, secret=SECRET, loop=loop, ping_delay=3600,
        on_login=lambda m: logged_in.set_result(m.authenticated),
    )
    manager.register_event("*", lambda m, e: events.append(e["Event"]))
    try:
        await manager.connect()
        assert await asyncio.wait_for(logged_in, 10)
        # The version panoramisk read from the banner is the captured Asterisk's.
        assert manager.protocol.version == "11.0.0"

        pong = await manager.send_action({"Action": "Ping", "ActionID": "p-1"})
        assert pong.success and pong["Ping"] == "Pong" and pong["ActionID"] == "p-1"
        assert float(pong["Timestamp"]) > 0

        await sim.wait_replayed()
        await wait_until(lambda: len(events) == len(sim.traces[0].events) + 1)
        assert events[0] == "FullyBooted"
        assert events[1:] == [e["Event"] for e in sim.traces[0].events]

        bye = await manager.send_action({"Action": "Logoff", "ActionID": "bye"})
        assert bye["Response"] == "Goodbye" and bye["ActionID"] == "bye"
        await wait_until(lambda: not sim.sessions)
    finally:
        manager.close()
        await sim.stop()


async def test_wire_answers_match_asterisk(shared_dir: Path) -> None:
    path = trace_path(shared_dir, "10-internal.ami")
    sim = AmiSimulator([path], speed=0, username=USER, secret=SECRET)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        # The banner is the captured one, byte for byte.
        assert client.raw == path.read_bytes().split(b"\n", 1)[0] + b"\n"

        client.send({"Action": "Ping", "ActionID": "early"})
        assert await client.read_frame() == {"Response": "Error", "ActionID": "early", "Message": "Permission denied"}

        assert (await client.login(events="off"))["Message"] == "Authentication accepted"
        client.send({"Action": "NoSuchThing", "ActionID": "x1"})
        assert await client.read_frame() == {
            "Response": "Error", "ActionID": "x1", "Message": "Invalid/unknown command",
        }
        assert client.raw.endswith(b"Response: Error\r\nActionID: x1\r\nMessage: Invalid/unknown command\r\n\r\n")

        client.send({"Action": "Ping", "ActionID": "p2"})
        pong = await client.read_frame()
        assert (pong["Response"], pong["ActionID"], pong["Ping"]) == ("Success", "p2", "Pong")

        client.send({"Action": "Logoff", "ActionID": "bye"})
        assert await client.read_frame() == {
            "Response": "Goodbye", "ActionID": "bye", "Message": "Thanks for all the fish.",
        }
        assert await client.closed_by_server()
    finally:
        await sim.stop()


async def test_wrong_secret_is_refused_and_hung_up(shared_dir: Path) -> None:
    sim = AmiSimulator([trace_path(shared_dir, "10-internal.ami")], speed=0, username=USER, secret=SECRET)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        answer = await client.login(secret="guess")
        assert answer == {"Response": "Error", "ActionID": "login-1", "Message": "Authentication failed"}
        assert await client.closed_by_server()
        # Nobody listened, so nothing was replayed.
        assert sim.events_sent == 0
    finally:
        await sim.stop()


async def test_every_event_replayed_in_order(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "13-burst.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        await client.login()
        booted = await client.read_frame()
        assert booted["Event"] == "FullyBooted"
        received = [await client.read_frame() for _ in trace.events]
        assert received == list(trace.events)
    finally:
        await sim.stop()


async def test_event_mask_picks_event_classes(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "06-outbound-answered.ami"))
    cdrs = [e for e in trace.events if e["Event"] == "Cdr"]
    assert cdrs
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        await client.login(events="off")
        client.send({"Action": "Events", "ActionID": "m", "EventMask": "cdr"})
        assert await client.read_frame() == {"Response": "Success", "ActionID": "m", "Events": "On"}
        await sim.wait_replayed()
        received = [await client.read_frame() for _ in cdrs]
        assert received == cdrs
        client.send({"Action": "Ping", "ActionID": "after"})
        # Nothing else came before the Ping's answer: the mask let only CDRs through.
        assert (await client.read_frame())["ActionID"] == "after"
    finally:
        await sim.stop()


async def test_lists_show_what_is_live_when_a_client_reconnects(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "01-inbound-answered.ami"))
    # Drop clients while the caller waits in the queue.
    joined = next(i for i, e in enumerate(trace.events) if e["Event"] == "QueueCallerJoin")
    cut = joined + 1
    expected_live = live_linkedids(trace.events[:cut])
    assert expected_live
    caller = trace.events[joined]
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, drop_after=cut)
    await sim.start()
    try:
        first = await RawAmiClient.connect(sim.port)
        await first.login()
        assert await first.closed_by_server()
        assert sim.events_sent == cut

        # With events off nobody listens, so the replay stays where it was cut.
        again = await RawAmiClient.connect(sim.port)
        await again.login(events="off")
        again.send({"Action": "CoreShowChannels", "ActionID": "c"})
        channels = await again.read_until(lambda f: f.get("Event") == "CoreShowChannelsComplete")
        assert channels[0] == {"Response": "Success", "ActionID": "c", "EventList": "start",
                               "Message": "Channels will follow"}
        items = [f for f in channels if f.get("Event") == "CoreShowChannel"]
        assert {f["Linkedid"] for f in items} == expected_live
        assert all(f["ActionID"] == "c" for f in channels)
        assert channels[-1]["ListItems"] == str(len(items))
        assert caller["Uniqueid"] in {f["Uniqueid"] for f in items}

        again.send({"Action": "QueueStatus", "ActionID": "q"})
        status = await again.read_until(lambda f: f.get("Event") == "QueueStatusComplete")
        entries = [f for f in status if f.get("Event") == "QueueEntry"]
        assert [(e["Queue"], e["Uniqueid"], e["CallerIDNum"]) for e in entries] == [
            (caller["Queue"], caller["Uniqueid"], caller["CallerIDNum"])
        ]
        params = [f for f in status if f.get("Event") == "QueueParams"]
        assert [p["Queue"] for p in params] == [caller["Queue"]] and params[0]["Calls"] == "1"

        again.send({"Action": "ExtensionStateList", "ActionID": "e"})
        states = await again.read_until(lambda f: f.get("Event") == "ExtensionStateListComplete")
        assert states[0]["Message"] == "Extension Statuses will follow"
        assert states[-1]["ListItems"] == str(len(states) - 2)
        await again.close()

        # A listening client lets the replay finish; then no call is up any more.
        last = await RawAmiClient.connect(sim.port)
        await last.login()
        await sim.wait_replayed()
        last.send({"Action": "CoreShowChannels", "ActionID": "c2"})
        tail = await last.read_until(lambda f: f.get("Event") == "CoreShowChannelsComplete")
        assert tail[-1]["ListItems"] == "0"
        assert not [f for f in tail if f.get("Event") == "CoreShowChannel"]
        last.send({"Action": "QueueStatus", "ActionID": "q2"})
        status = await last.read_until(lambda f: f.get("Event") == "QueueStatusComplete")
        assert not [f for f in status if f.get("Event") == "QueueEntry"]
        members = {f["Location"] for f in status if f.get("Event") == "QueueMember"}
        seen = {e["Interface"] for e in trace.events if e["Event"] == "QueueMemberStatus"}
        assert members == seen
    finally:
        await sim.stop()


async def test_fresh_ids_make_each_pass_new_calls(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "10-internal.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, loop=True, fresh_ids=True)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        await client.login()
        await client.read_frame()  # FullyBooted
        first = [await client.read_frame() for _ in trace.events]
        second = [await client.read_frame() for _ in trace.events]
    finally:
        await sim.stop()
    assert first == list(trace.events)
    first_ids = {e["Linkedid"] for e in first if "Linkedid" in e}
    second_ids = {e["Linkedid"] for e in second if "Linkedid" in e}
    assert second_ids == {f"{i}-1" for i in first_ids}
    for before, after in zip(first, second):
        assert before.keys() == after.keys()
        for key, value in before.items():
            if key.lower().endswith(("uniqueid", "linkedid")) and value:
                assert after[key] == f"{value}-1"
            else:
                assert after[key] == value


async def test_events_a_handler_emits_go_where_replayed_ones_go(shared_dir: Path) -> None:
    # What the click-to-call simulation relies on: the events an action handler emits
    # come after the action's answer, reach every listening client through its event
    # mask, and are in the lists a client asks for, just as replayed events are.
    click = load_trace(trace_path(shared_dir, "pjsip-02-click-to-call.ami")).events
    # The captured click-to-call up to the moment both parties are bridged: a call in progress.
    bridged = next(i for i, e in enumerate(click) if e["Event"] == "BridgeEnter") + 1
    emitted = list(click[:bridged])
    in_progress = live_linkedids(emitted)
    assert in_progress
    dialplan = [e for e in emitted if "dialplan" in e["Privilege"].split(",")]
    assert dialplan and len(dialplan) < len(emitted)
    # Nothing replayed: whatever a client gets was emitted by the handler.
    sim = AmiSimulator([], speed=0, username=USER, secret=SECRET)

    async def originate(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        session.respond(action, "Success", Message="Originate successfully queued")
        for event in emitted:
            await server.emit(event)

    sim.action_handlers["originate"] = originate
    await sim.start()
    clients: list[RawAmiClient] = []
    try:
        asking = await RawAmiClient.connect(sim.port)
        watching = await RawAmiClient.connect(sim.port)
        deaf = await RawAmiClient.connect(sim.port)
        clients += [asking, watching, deaf]
        await asking.login()
        assert (await asking.read_frame())["Event"] == "FullyBooted"
        await watching.login(events="off")
        watching.send({"Action": "Events", "ActionID": "m", "EventMask": "dialplan"})
        assert (await watching.read_frame())["Events"] == "On"
        await deaf.login(events="off")

        asking.send({"Action": "Originate", "ActionID": "o-1", "Channel": "PJSIP/204", "Exten": "89267770004"})
        answer = await asking.read_frame()
        assert (answer["Response"], answer["ActionID"]) == ("Success", "o-1")
        assert [await asking.read_frame() for _ in emitted] == emitted
        # The client that asked for dialplan events only got those, and nothing more.
        assert [await watching.read_frame() for _ in dialplan] == dialplan
        watching.send({"Action": "Ping", "ActionID": "after"})
        assert (await watching.read_frame())["ActionID"] == "after"
        # A client with events off got none, yet the PBX lists the emitted call as up.
        deaf.send({"Action": "CoreShowChannels", "ActionID": "c"})
        listed = await deaf.read_until(lambda f: f.get("Event") == "CoreShowChannelsComplete")
        assert listed[0]["ActionID"] == "c" and listed[0]["Response"] == "Success"
        assert {f["Linkedid"] for f in listed if f.get("Event") == "CoreShowChannel"} == in_progress
    finally:
        for client in clients:
            await client.close()
        await sim.stop()
