"""What every benchmark shares: the machine's description, RESULTS.md sections, databases, traces."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pbxbridge.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
PG_ADMIN_DSN = os.environ.get("PBXBRIDGE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Figures measured on the machine named in each section; rerun a benchmark to refresh its section "
    "(see README.md for the commands). Nothing here is asserted by the tests.\n"
)

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def shared_traces_dir() -> Path:
    """The shared captured AMI streams (env PBXBRIDGE_SHARED overrides)."""
    override = os.environ.get("PBXBRIDGE_SHARED")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "ami-traces"


def trace_paths() -> list[Path]:
    """Every captured stream, in name order."""
    return sorted(shared_traces_dir().glob("*.ami"))


def shared_recordings(shared: Path) -> list[tuple[Path, float]]:
    """Every shared recording with sound, with its duration."""
    from pbxbridge.recordings.audio import RecordingError, read_info

    found = []
    for path in sorted([*(shared / "recordings").rglob("*.wav"), *(shared / "recordings-stereo").glob("*.wav")]):
        try:
            found.append((path, read_info(path).duration_s))
        except RecordingError:
            continue  # header-only files of unanswered calls
    return found


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Other work on the machine slows every figure down: the load is part of the record.
LOAD_AT_START = os.getloadavg()[0]


def machine_line() -> str:
    """One line naming the machine the figures come from, with its load average before and after."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {LOAD_AT_START:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )


def write_section(name: str, title: str, body: str) -> None:
    """Put a benchmark's section into RESULTS.md, replacing its previous one and keeping the rest."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"{start}\n## {title}\n\n_{stamp}; {machine_line()}_\n\n{body.rstrip()}\n{end}\n"
    text = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(f"\nwritten to {RESULTS.relative_to(REPO_ROOT)} (section {name!r})")


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    # Nearest rank: the value below which p percent of the samples lie.
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process in MiB (from /proc)."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    return kb / 1024


@dataclass(slots=True)
class Database:
    """A scratch database: its plain URL and how to drop it."""

    kind: str
    url: str
    _pg_name: str | None = None
    _path: Path | None = None


def _pg_psql(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run()) if not _loop_running() else _in_thread(run)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_thread(coro_fn: object) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(coro_fn())).result()  # type: ignore[operator]


@contextmanager
def scratch_database(kind: str, workdir: Path, migrate: bool = True) -> Iterator[Database]:
    """A fresh, migrated SQLite file or PostgreSQL database, dropped afterwards."""
    from pbxbridge.db.engine import upgrade

    if kind == "sqlite":
        path = workdir / f"bench-{secrets.token_hex(4)}.sqlite3"
        db = Database(kind, f"sqlite:///{path}", _path=path)
    else:
        name = f"pbxb_bench_{secrets.token_hex(4)}"
        _pg_psql(f"CREATE DATABASE {name}")
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        db = Database(kind, f"{base}/{name}", _pg_name=name)
    try:
        if migrate:
            if _loop_running():
                _in_thread_call(upgrade, db.url)
            else:
                upgrade(db.url)
        yield db
    finally:
        if db._pg_name:
            _pg_psql(f"DROP DATABASE IF EXISTS {db._pg_name} WITH (FORCE)")
        if db._path:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db._path}{suffix}").unlink(missing_ok=True)


def _in_thread_call(fn: object, *args: object) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()  # type: ignore[arg-type]


class Simulator:
    """``pbxbridge simulate`` in a process of its own, so the process measured has its core to itself."""

    def __init__(self, traces: Sequence[Path], *, speed: float = 0.0, loop: bool = True, fresh_ids: bool = True):
        args = [sys.executable, "-m", "pbxbridge", "simulate", *map(str, traces), "--port", "0",
                "--speed", str(speed), "--log-level", "WARNING"]
        if loop:
            args.append("--loop")
        if fresh_ids:
            args.append("--fresh-ids")
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on .*:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stopwatch:
    """Wall-clock seconds since creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.started


def daemon_config(url: str, pbx_port: int = 0) -> Config:
    """The daemon's settings: this database, one PBX, no recordings, web and AGI on spare ports."""
    from pbxbridge.config import (
        Config,
        DatabaseConfig,
        PbxConfig,
        RecordingsConfig,
        RoutingConfig,
        TranscriptionConfig,
        WebConfig,
    )

    return Config(
        database=DatabaseConfig(url=url),
        recordings=RecordingsConfig(root=str(Path(tempfile.gettempdir()) / "pbxbridge-bench-no-recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=pbx_port, username="bench", secret="bench")],
        web=WebConfig(port=0, secret_key="benchmark-only-secret-key-0123456789"),
        routing=RoutingConfig(agi_port=0),
        transcription=TranscriptionConfig(workers=0),
    )
