"""Liveness, readiness and Prometheus metrics, for the service manager and monitoring."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from pbxbridge.transcription.tables import QUEUED, RUNNING, TranscriptionJob
from pbxbridge.web.context import ctx

routes = web.RouteTableDef()
DB_TIMEOUT_S = 5.0
OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and every PBX's AMI session is logged in; 503 otherwise."""
    context = ctx(request)
    checks: dict[str, object] = {}
    ready = True
    try:
        async with context.sessions() as db:
            await asyncio.wait_for(db.execute(text("SELECT 1")), DB_TIMEOUT_S)
            depth = await db.scalar(
                select(func.count()).select_from(TranscriptionJob).where(TranscriptionJob.status.in_((QUEUED, RUNNING)))
            )
        checks["database"] = "ok"
        checks["transcription_queue"] = int(depth or 0)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
        ready = False
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["transcription_queue"] = None
    if context.ami_status is not None:
        ami = context.ami_status()
        checks["ami"] = {name: "logged in" if ok else "not logged in" for name, ok in ami.items()}
        ready = ready and bool(ami) and all(ami.values())
    else:
        checks["ami"] = "not running in this process"
        ready = False
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return web.json_response(body, status=200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The KPI metrics in Prometheus text format."""
    source = ctx(request).metrics_text
    body = source() if source is not None else ""
    response = web.Response(body=body.encode("utf-8"))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/api/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return web.json_response(json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))
