"""A stand-in PBX for trying pbxbridge without Asterisk: the bundled calls, replayed forever."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.config import Config, PbxConfig
from pbxbridge.demo import DEMO_DIR, demo_traces


def demo_wanted(config: Config) -> bool:
    """Whether ``run`` should start the demo PBX (demo.mode, or no PBX configured)."""
    mode = config.demo.mode
    if mode != "auto":
        return mode == "on"
    return config.pbx == [PbxConfig()]


async def start_demo_pbx(
    config: Config, traces: Sequence[Path] | None = None, *, speed: float = 1.0
) -> tuple[AmiSimulator, Config]:
    """Start a simulator replaying the demo calls; return it and settings pointing at it.

    Each pass gets fresh call ids and current times, so the journal keeps
    filling with new calls, as it would on a working sales floor.
    """
    paths = list(traces) if traces is not None else demo_traces()
    if not paths:
        raise FileNotFoundError(f"no demo AMI captures (*.ami) under {DEMO_DIR}")
    pbx = config.pbx[0] if config.pbx else PbxConfig()
    simulator = AmiSimulator(
        paths, speed=speed, host="127.0.0.1", port=0,
        username=pbx.username, secret=pbx.secret,
        loop=True, fresh_ids=True, retime=True,
    )
    _teach_click_to_call(simulator, paths[0].parent, config.managers)
    await simulator.start()
    demo_pbx = dataclasses.replace(pbx, host="127.0.0.1", port=simulator.port)
    recordings = config.recordings
    bundled = DEMO_DIR / "recordings"
    if recordings.root == "recordings" and bundled.is_dir():
        # The demo calls' MixMonitor files ship with the package.
        recordings = dataclasses.replace(recordings, root=str(bundled))
    return simulator, dataclasses.replace(config, pbx=[demo_pbx], recordings=recordings)


def _teach_click_to_call(simulator: AmiSimulator, traces_dir: Path, names: dict[str, str]) -> None:
    """Let the demo PBX answer click-to-call Originates, when the routing domain is installed."""
    try:
        from pbxbridge.routing.sim_originate import (
            ANSWERED_TRACE,
            BUSY_TRACE,
            OriginateSimulation,
        )
    except ModuleNotFoundError:
        return
    if (traces_dir / ANSWERED_TRACE).is_file() and (traces_dir / BUSY_TRACE).is_file():
        OriginateSimulation(traces_dir=traces_dir, names=names).install(simulator)
