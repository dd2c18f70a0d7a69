"""Finished calls into the journal: one writer, in the order they finished, in batches.

What queued up while a batch was being written goes in the next one, so a
backlog drains in a few commits and a slow database never holds up the event
stream. A call that finds the writer idle waits a moment (``COALESCE_S``) for
the calls hanging up with it: on SQLite the writer runs on the event loop and
nothing queues while it writes, so without that moment every call of a busy
minute would pay a transaction of its own. A database that is away is waited out (the calls stay queued); a call
the database keeps refusing for another reason is set aside after a few
attempts, so that it cannot hold up every call behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call

log = logging.getLogger(__name__)

# Database errors worth waiting out: the server restarting, the network, a lock.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
RETRY_CAP_S = 30.0
MAX_ATTEMPTS_ON_ERROR = 5
# Most finished calls written in one transaction: one batch still holds the database only briefly.
WRITE_BATCH_MAX = 200
# A captured stream is read faster than its calls are written: reading waits
# for the writer once this many finished calls are queued (some KB each).
REPLAY_QUEUE_MAX = 10 * WRITE_BATCH_MAX
# Longest a finished call waits for others to share its transaction, counted from its hangup:
# hangup -> journal is this plus one write (p99 < 100 ms with 1,000 calls up is the bound kept).
COALESCE_S = 0.025


@dataclass(slots=True)
class CallStats:
    calls_finished: int = 0
    calls_written: int = 0
    calls_failed: int = 0
    write_retries: int = 0
    open_call_saves: int = 0
    open_call_save_errors: int = 0
    by_pbx: dict[str, int] = field(default_factory=dict)


class CallPipeline:
    """The queue of finished calls and the one task that writes them.

    ``on_written(call, row)`` is told of each call once it is in the journal;
    ``on_status(text)`` of an outage (a line for systemd's STATUS=) and, with
    None, of its end.
    """

    def __init__(
        self,
        *,
        retry_initial_s: float,
        on_written: Callable[[FinishedCall, Call], None],
        on_status: Callable[[str | None], None],
        coalesce_s: float = COALESCE_S,
    ) -> None:
        # First pause before writing a call again after the database failed.
        self.retry_initial_s = retry_initial_s
        self.coalesce_s = coalesce_s
        self.on_written = on_written
        self.on_status = on_status
        self.stats = CallStats()
        self.writer: CallWriter | None = None
        # Each call with the moment it was queued (time.monotonic), for the coalescing window.
        self._queue: asyncio.Queue[tuple[float, FinishedCall]] = asyncio.Queue()
        # Wakes the writer waiting for company to look again (a full batch queued, a flush begun).
        self._wake = asyncio.Event()
        # Flushes under way: while one waits, no batch waits out the coalescing window.
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        # Finished calls not yet in the journal: their saved in-progress state
        # is removed by the journal's own transaction, never by the saver.
        self.unwritten: set[tuple[str, str]] = set()
        # Saving calls in progress and writing finished ones take turns, so a
        # save that read a call before it finished cannot land after its write.
        self._turn = asyncio.Lock()
        # Set while no finished call waits for the writer (other work defers to it).
        self._idle = asyncio.Event()
        self._idle.set()
        # When the database work under way began, for the watchdog.
        self.busy_since: float | None = None

    # -- life cycle -------------------------------------------------------------

    def start(self, writer: CallWriter) -> None:
        self.writer = writer
        self._task = asyncio.create_task(self._write_calls(), name="call-writer")

    async def stop(self, timeout_s: float) -> None:
        """Write what is queued (for ``timeout_s`` at most), then stop the writer."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.error("stopping with %d finished call(s) not written: the database is unreachable",
                      self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- what comes in ------------------------------------------------------------

    def put(self, call: FinishedCall) -> None:
        """A call the tracker finished: to the journal, after those before it."""
        self.stats.calls_finished += 1
        self.unwritten.add((call.pbx, call.linkedid))
        self._idle.clear()
        self._queue.put_nowait((time.monotonic(), call))
        # The writer may hold the first call of the batch while it waits for the rest.
        if self._queue.qsize() >= WRITE_BATCH_MAX - 1:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Finished calls waiting for the database."""
        return self._queue.qsize()

    async def flush(self) -> None:
        """Wait until every call finished so far is in the journal (or set aside).

        Whoever flushes wants the calls now: the writer stops waiting for companions
        of the batch it holds (no call is coming that the flush waits for).
        """
        self._flushing += 1
        self._wake.set()
        try:
            await self._queue.join()
        finally:
            self._flushing -= 1

    async def make_room(self) -> None:
        """Between reads of a captured stream: let the writer take a full batch, keep the queue bounded.

        The writer takes whatever is queued when it runs: yielding only once
        a batch is full writes the calls in the fewest transactions, and a
        writer waiting on the database lets the reading go on meanwhile.
        """
        queued = self._queue.qsize()
        if queued >= REPLAY_QUEUE_MAX:
            await self._idle.wait()
        elif queued >= WRITE_BATCH_MAX:
            await asyncio.sleep(0)

    # -- taking turns at the database -------------------------------------------------

    @contextlib.asynccontextmanager
    async def database_turn(self) -> AsyncIterator[None]:
        """Hold the turn at the database: writes of calls, saves and other work never overlap."""
        async with self._turn:
            self.busy_since = time.monotonic()
            try:
                yield
            finally:
                self.busy_since = None

    async def writer_first(self, until: float) -> None:
        """Wait for the writer to run dry, but not past ``until`` (a ``time.monotonic`` moment)."""
        while not self._idle.is_set():
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), remaining)

    # -- writing -----------------------------------------------------------------------

    async def _write_calls(self) -> None:
        while True:
            queued_at, first = await self._queue.get()
            await self._gather(queued_at)
            batch = [first]
            while len(batch) < WRITE_BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait()[1])
            try:
                rows = await self._write_batch(batch)
                for call, row in zip(batch, rows, strict=True):
                    if row is None:
                        continue
                    log.info("call %s/%s written: %s %s", call.pbx, call.linkedid, call.direction, call.status,
                             extra={"pbx": call.pbx, "linkedid": call.linkedid, "direction": str(call.direction),
                                    "status": str(call.status), "closed_by": str(call.closed_by)})
                    self.on_written(call, row)
            finally:
                for call in batch:
                    self.unwritten.discard((call.pbx, call.linkedid))
                    self._queue.task_done()
                if self._queue.empty():
                    self._idle.set()

    async def _gather(self, queued_at: float) -> None:
        """Let the calls hanging up with the one queued at ``queued_at`` join its transaction.

        No wait for a call that already waited (behind a write, an outage),
        once a full batch is queued or while a flush waits: the window bounds
        the delay of each call.
        """
        until = queued_at + self.coalesce_s
        while not self._flushing and self._queue.qsize() + 1 < WRITE_BATCH_MAX:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _write_batch(self, batch: list[FinishedCall]) -> list[Call | None]:
        """Write calls in one transaction, waiting out outages; one by one if the database refuses the batch."""
        assert self.writer is not None
        if len(batch) == 1:
            return [await self._write_one(batch[0])]
        attempt = 0
        while True:
            try:
                async with self.database_turn():
                    rows = await self.writer.write_many(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not transient(exc):
                    # One bad call must not hold up the rest: write them singly,
                    # each with its own retries and, at worst, set aside alone.
                    log.warning("writing %d calls together failed; writing them one by one",
                                len(batch), exc_info=True)
                    return [await self._write_one(call) for call in batch]
                attempt += 1
                delay = self._retry_delay(attempt)
                log.warning("writing %d calls failed (%s); retry in %g s", len(batch), short(exc), delay)
                self.on_status(f"database unreachable; {len(self.unwritten)} call(s) waiting")
                await asyncio.sleep(delay)
                continue
            self._count_written(batch, recovered=attempt > 0)
            return list(rows)

    async def _write_one(self, call: FinishedCall) -> Call | None:
        """Write one call, waiting out database outages; None if it had to be set aside."""
        assert self.writer is not None
        attempt = refusals = 0
        where = {"pbx": call.pbx, "linkedid": call.linkedid}
        while True:
            try:
                async with self.database_turn():
                    # The batch path, for one call: a new call is inserted without the
                    # read-back an idempotent single write does; a re-written one is refreshed.
                    (row,) = await self.writer.write_many([call])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                delay = self._retry_delay(attempt)
                if transient(exc):
                    log.warning("writing call %s/%s failed (%s); retry in %g s",
                                call.pbx, call.linkedid, short(exc), delay, extra=where)
                    self.on_status(f"database unreachable; {len(self.unwritten)} call(s) waiting")
                else:
                    refusals += 1
                    if refusals >= MAX_ATTEMPTS_ON_ERROR:
                        self.stats.calls_failed += 1
                        log.exception("call %s/%s could not be written; set aside: %r",
                                      call.pbx, call.linkedid, call, extra=where)
                        return None
                    log.warning("writing call %s/%s failed; retry in %g s",
                                call.pbx, call.linkedid, delay, exc_info=True, extra=where)
                await asyncio.sleep(delay)
                continue
            self._count_written([call], recovered=attempt > 0)
            return row

    def _retry_delay(self, attempt: int) -> float:
        self.stats.write_retries += 1
        return float(min(RETRY_CAP_S, self.retry_initial_s * 2 ** min(attempt - 1, 10)))

    def _count_written(self, calls: list[FinishedCall], *, recovered: bool) -> None:
        self.stats.calls_written += len(calls)
        for call in calls:
            self.stats.by_pbx[call.pbx] = self.stats.by_pbx.get(call.pbx, 0) + 1
        if recovered:
            self.on_status(None)


def transient(exc: BaseException) -> bool:
    """Whether waiting may cure a database error (a lost connection, a restart, a lock)."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def short(exc: BaseException) -> str:
    """An error in one line, for a log line that may repeat through an outage."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
