"""Captured AMI streams and recordings that the demo replays."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
TRACES_DIR = DEMO_DIR / "traces"


def demo_traces() -> list[Path]:
    """The demo's AMI streams, in the order they are replayed."""
    return sorted(TRACES_DIR.glob("*.ami"))
