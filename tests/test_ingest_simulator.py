"""The simulator at full speed (``--speed 0``): every event, exact stops, lists that match, no pile-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbxbridge.ami.frames import Frame, encode_frame
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace, wire_template, with_fresh_ids
from tests.fixtures_ami import RawAmiClient, live_linkedids, trace_path, wait_until

USER, SECRET = "pbxbridge", "s3cret"


def passes(events: tuple[Frame, ...], count: int) -> list[Frame]:
    """What ``--loop --fresh-ids`` sends in ``count`` passes."""
    return [with_fresh_ids(e, f"-{i}" if i else "") for i in range(count) for e in events]


def test_rendered_events_are_what_the_wire_format_gives(shared_dir: Path) -> None:
    for path in sorted(shared_dir.glob("*.ami")):
        for event in load_trace(path).events:
            for suffix in ("", "-7", "-c00002a"):
                assert suffix.encode().join(wire_template(event)) == encode_frame(with_fresh_ids(event, suffix))


async def test_pause_stops_at_the_exact_event_and_lists_match_it(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "01-inbound-answered.ami"))
    stream = passes(trace.events, 3)
    # In the middle of the second pass, at no round number.
    cut = len(trace.events) + len(trace.events) // 2 + 3
    expected_live = live_linkedids(stream[:cut])
    assert expected_live and all(lid.endswith("-1") for lid in expected_live)
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, loop=True, fresh_ids=True)
    sim.pause_after(cut)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        await client.login()
        assert (await client.read_frame())["Event"] == "FullyBooted"
        await sim.wait_paused()
        assert sim.events_sent == cut
        assert [await client.read_frame() for _ in range(cut)] == stream[:cut]

        client.send({"Action": "CoreShowChannels", "ActionID": "c"})
        answer = await client.read_until(lambda f: f.get("Event") == "CoreShowChannelsComplete")
        # Nothing was replayed between the pause and the answer.
        assert answer[0]["Response"] == "Success"
        assert {f["Linkedid"] for f in answer if f.get("Event") == "CoreShowChannel"} == expected_live

        sim.resume()
        rest = len(stream) - cut
        assert [await client.read_frame() for _ in range(rest)] == stream[cut:]
    finally:
        await sim.stop()


async def test_a_client_that_does_not_read_holds_the_replay_back(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "13-burst.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, loop=True, fresh_ids=True)
    await sim.start()
    try:
        client = await RawAmiClient.connect(sim.port)
        await client.login()
        assert (await client.read_frame())["Event"] == "FullyBooted"
        # The client reads nothing more: the sockets' buffers fill up until the
        # simulator's own write buffer passes its high-water mark, where asyncio
        # has the replay wait for the client (well under the write timeout).
        (session,) = sim.sessions
        transport = session.writer.transport
        high_water = transport.get_write_buffer_limits()[1]
        await wait_until(lambda: transport.get_write_buffer_size() > high_water)
        sent_while_stalled = sim.events_sent
        # What waits for the client is bounded by the sockets' buffers, not by the replay's length.
        assert transport.get_write_buffer_size() < 4 << 20
        # Many turns of the event loop, each one in which an unheld replay would
        # send its next chunk (it yields between chunks): not one event goes out.
        for _ in range(200):
            await asyncio.sleep(0)
        assert sim.events_sent == sent_while_stalled

        # Once it reads, it gets every event, in order, across passes.
        expected = passes(trace.events, 4)
        assert [await client.read_frame() for _ in expected] == expected
    finally:
        await sim.stop()
