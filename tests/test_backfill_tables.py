"""FreePBX's cel and cdr tables on MariaDB and PostgreSQL, filled from every shared capture."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pbxbridge.ami.frames import read_trace
from tests.fixtures_cel import SOURCES, _driver_url, capture_tables, cdr_database, load_captures


@pytest.mark.parametrize("source", SOURCES)
def test_every_cel_event_and_cdr_of_the_captures_is_a_row(source: str, shared_dir: Path) -> None:
    paths = sorted(shared_dir.glob("*.ami"))
    events: Counter[str] = Counter()
    cdrs = 0
    for path in paths:
        for frame in read_trace(path)[1]:
            if frame.get("Event") == "CEL":
                events[frame["EventName"]] += 1
            cdrs += frame.get("Event") == "Cdr"

    async def check() -> None:
        async with cdr_database(source) as url:
            await load_captures(url, paths)
            engine = create_async_engine(_driver_url(url))
            try:
                async with engine.connect() as conn:
                    stored = Counter(
                        {r[0]: r[1] for r in await conn.execute(text("SELECT eventtype, count(*) FROM cel GROUP BY eventtype"))}
                    )
                    assert stored == events
                    assert (await conn.execute(text("SELECT count(*) FROM cdr"))).scalar() == cdrs
                    # The attended transfer's JSON is longer than FreePBX's eventextra: it arrives cut.
                    extra = (
                        await conn.execute(text("SELECT eventextra FROM cel WHERE eventtype = 'ATTENDEDTRANSFER'"))
                    ).scalar_one()
                    assert len(extra) == 255 and extra.startswith('{"bridge1_id"')
                    # Recordings as FreePBX's CDR(recordingfile) holds them: the file name alone.
                    names = {r[0] for r in await conn.execute(text("SELECT recordingfile FROM cdr")) if r[0]}
                    assert "in-74951234567-79161110001-20261126-200409-1795723449.4.wav" in names
                    assert all("/" not in n for n in names)
            finally:
                await engine.dispose()

    asyncio.run(check())


def test_a_capture_row_is_what_cel_odbc_writes(shared_dir: Path) -> None:
    rows = capture_tables(shared_dir / "01-inbound-answered.ami")
    first = rows.cel[0]
    assert first["eventtype"] == "CHAN_START"
    assert first["eventtime"] == "2026-11-26 20:04:09"  # the PBX's wall clock (the lab ran on UTC), to the second
    assert first["channame"] == "Local/79161110001@client-sim-00000002;1"
    assert first["uniqueid"] == first["linkedid"] == "1795723449.4"
    assert {r["linkedid"] for r in rows.cdr} == {"1795723449.4"}
