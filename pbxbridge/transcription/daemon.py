"""Transcription in the daemon: queue each written call's recordings, and run the workers.

Workers are separate processes (the model is large and CPU-bound; the event
loop must never wait on it).  The daemon can start ``transcription.workers``
of them itself; on a host with systemd, set that to 0 and run
``pbxbridge-transcriber@N`` units instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from pbxbridge.transcription.queue import enqueue_written
from pbxbridge.transcription.tables import DONE, TranscriptionJob

if TYPE_CHECKING:
    from pbxbridge.config import Config
    from pbxbridge.hub import Hub

log = logging.getLogger(__name__)

# A worker that keeps dying is restarted no faster than this.
RESTART_BACKOFF_MAX_S = 60.0
PR_SET_PDEATHSIG = 1
DIE_WITH_PARENT_ENV = "PBXBRIDGE_WORKER_PARENT"
STOP_GRACE_S = 15.0
# How often the daemon asks the database for transcripts the workers stored (when anyone listens).
WATCH_S = 2.0


def worker_environment(config: Config) -> dict[str, str]:
    """The environment a worker needs to read the same database, recordings and model settings."""
    env = dict(os.environ)
    env["PBXBRIDGE_DATABASE__URL"] = config.database.url
    env["PBXBRIDGE_RECORDINGS__ROOT"] = str(config.recordings.root)
    env["PBXBRIDGE_RECORDINGS__SPOOL_PREFIX"] = str(config.recordings.spool_prefix)
    t = config.transcription
    for key in ("engine", "model", "device", "compute_type", "language", "beam_size", "threads", "max_attempts"):
        env[f"PBXBRIDGE_TRANSCRIPTION__{key.upper()}"] = str(getattr(t, key))
    return env


def die_with_parent() -> None:
    """In a worker the daemon started: end it if the daemon dies, even by SIGKILL.

    Its job is then claimed again once the heartbeat goes stale; a worker
    outliving its daemon would only compete with the next daemon's workers.
    """
    parent = os.environ.get(DIE_WITH_PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != parent:
        # The daemon was gone before the request was in place.
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerProcesses:
    """Starts N ``pbxbridge transcribe-worker`` processes and restarts any that die."""

    def __init__(self, config: Config, count: int) -> None:
        self.config = config
        self.count = count
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start every worker."""
        for index in range(1, self.count + 1):
            self._tasks.append(asyncio.create_task(self._keep(index), name=f"transcriber-{index}"))
        log.info("transcription: %d worker process(es) started", self.count)

    async def _keep(self, index: int) -> None:
        backoff = 1.0
        worker_id = f"{socket.gethostname()}-daemon-{index}"
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbxbridge", "transcribe-worker", "--worker-id", worker_id,
                env={**worker_environment(self.config), DIE_WITH_PARENT_ENV: str(os.getpid())},
            )
            self._procs[index] = proc
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("transcription worker %s exited with %s; restarting in %.0f s", worker_id, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)

    async def stop(self) -> None:
        """Let each worker finish or give back its job, then end it."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self._procs.values():
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                # Its job stays claimed until the heartbeat goes stale: another worker takes it.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TranscriptWatcher:
    """Tells the hub's ``on_transcript_ready`` subscribers of transcripts the workers stored.

    Workers run in processes of their own (here or on other hosts) and write
    to the database only; the daemon learns of their results by asking it,
    every ``poll_s``, and only while somebody subscribed.
    """

    def __init__(self, hub: Hub, poll_s: float = WATCH_S) -> None:
        self.hub = hub
        self.poll_s = poll_s
        # Rounds of asking done (tests wait on it).
        self.polls = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.hub.transcript_subscribers or self.hub.sessions is None:
            return
        async with self.hub.sessions() as session:
            since = await session.scalar(select(func.max(TranscriptionJob.finished_at)))
        self._task = asyncio.create_task(self._watch(since), name="transcript-watcher")

    async def _watch(self, since: datetime | None) -> None:
        assert self.hub.sessions is not None
        while True:
            await asyncio.sleep(self.poll_s)
            async with self.hub.sessions() as session:
                query = select(TranscriptionJob.recording_id, TranscriptionJob.finished_at).where(
                    TranscriptionJob.status == DONE
                )
                if since is not None:
                    query = query.where(TranscriptionJob.finished_at > since)
                done = (await session.execute(query.order_by(TranscriptionJob.finished_at))).all()
            for recording_id, finished_at in done:
                self.hub.transcript_ready(recording_id)
                since = finished_at
            self.polls += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def attach(hub: Hub) -> None:
    """Queue recordings as calls are written; start the configured worker processes (live only)."""
    hub.after_write(enqueue_written)
    hub.add_component(TranscriptWatcher(hub), serving=True)
    count = hub.config.transcription.workers
    if count > 0:
        hub.add_component(WorkerProcesses(hub.config, count), serving=True)
