"""The KPI domain put together: the store's updater, the metrics and the lead watch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.kpi.alerts import LeadAtRisk, LeadWatch
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.metrics import KpiMetrics
from pbxbridge.kpi.store import KpiRecorder


class KpiService:
    """One per daemon: a CallWriter hook (per call and per batch); polls ``due_alerts``, serves ``metrics_text``."""

    def __init__(self, settings: KpiSettings | None = None, metrics: KpiMetrics | None = None) -> None:
        self.settings = settings or KpiSettings()
        self.metrics = metrics or KpiMetrics()
        self.watch = LeadWatch(self.settings)
        self.recorder = KpiRecorder(self.settings, on_commit=[self.metrics.record, self.watch.note_call])

    @classmethod
    def from_config(cls, config: Any) -> KpiService:
        """Built from a Config's ``[kpi]`` section."""
        return cls(KpiSettings.from_config(config))

    async def record_written(self, session: AsyncSession, written: Sequence[tuple[Any, Any, bool]]) -> None:
        """CallWriter hook: calls written together update the figures once, inside their transaction.

        For scripts and tests; the daemon folds calls in after the journal (``follower.py``).
        """
        await self.recorder.apply_many(session, written)

    async def start(self, session: AsyncSession) -> int:
        """Reopen callback windows left open before a restart; return how many."""
        return await self.watch.load(session)

    def due_alerts(self, now: float) -> list[LeadAtRisk]:
        """Leads about to be lost at event time ``now``; also published to subscribers."""
        return self.watch.due_alerts(now)

    def metrics_text(self) -> str:
        """Prometheus exposition text for ``/metrics``."""
        return self.metrics.text().decode("utf-8")
