"""Prometheus metrics of the sales line: live gauges, per-manager counters, response-time histograms."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pbxbridge.kpi.definitions import INBOUND, CallFact

# Queue waits: seconds to minutes; the service level threshold (20 s) sits on a bucket edge.
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Callbacks: minutes to hours; the lost-lead window (900 s) sits on a bucket edge.
CALLBACK_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


class KpiMetrics:
    """The metrics, in their own registry so that several daemons (or tests) never collide."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_in_progress = Gauge(
            "pbxbridge_calls_in_progress", "Calls the PBX has up right now", registry=r
        )
        self.callers_waiting = Gauge(
            "pbxbridge_callers_waiting", "Inbound callers waiting for a manager right now", registry=r
        )
        self.answered = Counter(
            "pbxbridge_calls_answered", "Client calls answered, by the manager who answered or placed them",
            ["manager", "direction"], registry=r,
        )
        self.missed = Counter(
            "pbxbridge_calls_missed", "Inbound calls that rang a manager who did not answer", ["manager"], registry=r
        )
        self.unanswered = Counter(
            "pbxbridge_inbound_unanswered", "Inbound callers nobody answered", ["status"], registry=r
        )
        self.wait = Histogram(
            "pbxbridge_inbound_wait_seconds", "Inbound callers' wait until answered (or until they gave up)",
            ["outcome"], buckets=WAIT_BUCKETS, registry=r,
        )
        self.callback = Histogram(
            "pbxbridge_callback_seconds", "From a missed call's end to the next outbound call to that client",
            buckets=CALLBACK_BUCKETS, registry=r,
        )

    def set_live(self, calls_in_progress: int, callers_waiting: int) -> None:
        """Set the live gauges from the call tracker's view of the PBX."""
        self.calls_in_progress.set(calls_in_progress)
        self.callers_waiting.set(callers_waiting)

    def record(self, fact: CallFact, new_callbacks: list[tuple[CallFact, float]], is_new: bool) -> None:
        """Count a committed call; a replayed call was counted the first time."""
        if not is_new:
            return
        if fact.answered and fact.manager and fact.direction != "internal":
            self.answered.labels(manager=fact.manager, direction=fact.direction).inc()
        if fact.direction == INBOUND:
            for ext in fact.rang:
                if ext != fact.manager and ext not in fact.transferred_to:
                    self.missed.labels(manager=ext).inc()
            if fact.unanswered_inbound:
                self.unanswered.labels(status=fact.status).inc()
            self.wait.labels(outcome="answered" if fact.answered else "unanswered").observe(fact.wait_s)
        for _missed, seconds in new_callbacks:
            self.callback.observe(seconds)

    def text(self) -> bytes:
        """Prometheus exposition text of this registry."""
        return generate_latest(self.registry)


def metrics_text(metrics: KpiMetrics) -> str:
    """Exposition text for a ``/metrics`` route."""
    return metrics.text().decode("utf-8")


def metrics_handler(metrics: KpiMetrics):  # type: ignore[no-untyped-def]
    """An aiohttp handler serving the metrics (``app.router.add_get('/metrics', ...)``)."""
    from aiohttp import web

    async def handle(_request: web.Request) -> web.Response:
        body = metrics.text()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle
