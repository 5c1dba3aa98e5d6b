"""The latest coverage plan, for the dashboard's coverage layer.

``sedcity coverage plan ... --out DIR`` writes ``DIR/coverage.geojson`` (RFC 7946: WGS84
longitude/latitude; cells merged into polygons per class, period, quantity and probability
band, :mod:`sed.coverage.outputs`). The server serves the
newest such file found in ``coverage.plan_dir`` or one folder below it, as it is on disk
(checked once per version of the file: a JSON ``FeatureCollection`` within
``coverage.max_plan_bytes``), so a plan written while the server runs shows at the next request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from email.utils import format_datetime
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

from sed.api.deps import ConfigDep, CurrentUser

router = APIRouter(prefix="/api/coverage", tags=["coverage"])

#: File name the planner writes in its output folder.
PLAN_FILE = "coverage.geojson"
#: RFC 7946 media type.
GEOJSON_MEDIA_TYPE = "application/geo+json"


@dataclasses.dataclass(frozen=True)
class _Plan:
    path: Path
    mtime_ns: int
    size_bytes: int
    body: bytes


class _PlanCache:
    """The last plan served by one app (a plan is read and checked once, not per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: _Plan | None = None

    def get(self, path: Path, *, mtime_ns: int, size_bytes: int) -> _Plan | None:
        with self._lock:
            plan = self._plan
        if plan is not None and (plan.path, plan.mtime_ns, plan.size_bytes) == (path, mtime_ns, size_bytes):
            return plan
        return None

    def put(self, plan: _Plan) -> None:
        with self._lock:
            self._plan = plan


@router.get(
    "",
    summary="The newest coverage plan as GeoJSON (WGS84), for the map's coverage layer",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "The plan's coverage.geojson as written."},
        404: {"description": "No plan folder configured, or no coverage.geojson in it."},
        500: {"description": "The newest plan is too large or not a GeoJSON FeatureCollection."},
    },
)
def latest_plan(request: Request, config: ConfigDep, _user: CurrentUser) -> Response:
    plan_dir = config.coverage.plan_dir
    if plan_dir is None:
        raise HTTPException(404, "no coverage plan: the server's config sets no [coverage] plan_dir")
    found = _newest(plan_dir)
    if found is None:
        raise HTTPException(
            404, f"no coverage plan: no {PLAN_FILE} in coverage.plan_dir or a folder below it (sedcity coverage plan)"
        )
    if not hasattr(request.app.state, "coverage_plans"):
        request.app.state.coverage_plans = _PlanCache()
    plan = _load(plan_dir, found, max_bytes=config.coverage.max_plan_bytes, cache=request.app.state.coverage_plans)
    modified = dt.datetime.fromtimestamp(plan.mtime_ns / 1e9, dt.UTC)
    return Response(
        plan.body,
        media_type=GEOJSON_MEDIA_TYPE,
        headers={
            "Last-Modified": format_datetime(modified, usegmt=True),
            # the plan's folder, relative to plan_dir: which of several plans this is
            "X-Coverage-Plan": plan.path.parent.relative_to(plan_dir).as_posix(),
            "Cache-Control": "no-store",
        },
    )


def _newest(plan_dir: Path) -> Path | None:
    """The most recently modified ``coverage.geojson`` in ``plan_dir`` or one folder below (None: none)."""
    candidates = [plan_dir / PLAN_FILE, *plan_dir.glob(f"*/{PLAN_FILE}")]
    dated = []
    for path in candidates:
        try:
            stat = path.stat()
        except OSError:  # absent, or removed while we looked
            continue
        if path.is_file():
            dated.append((stat.st_mtime_ns, str(path), path))
    return max(dated)[2] if dated else None


def _load(plan_dir: Path, path: Path, *, max_bytes: int, cache: _PlanCache) -> _Plan:
    """The plan's bytes, read and checked once per (file, modification time, size)."""
    name = path.relative_to(plan_dir).as_posix()
    try:
        stat = path.stat()
    except OSError as exc:
        raise HTTPException(404, f"coverage plan {name}: gone while being read ({exc.strerror})") from None
    if stat.st_size > max_bytes:
        raise HTTPException(
            500,
            f"coverage plan {name} is {stat.st_size} bytes; the server serves at most {max_bytes} "
            "(coverage.max_plan_bytes): plan the dashboard's layer with coarser cells or a smaller area",
        )
    cached = cache.get(path, mtime_ns=stat.st_mtime_ns, size_bytes=stat.st_size)
    if cached is not None:
        return cached
    try:
        with path.open("rb") as handle:
            body = handle.read(max_bytes + 1)  # bounded even if the file grows after stat()
    except OSError as exc:
        raise HTTPException(500, f"coverage plan {name}: unreadable ({exc.strerror})") from None
    if len(body) > max_bytes:
        raise HTTPException(500, f"coverage plan {name} grew past {max_bytes} bytes while being read")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(
            500, f"coverage plan {name}: not JSON ({exc}); expected a GeoJSON FeatureCollection"
        ) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise HTTPException(500, f"coverage plan {name}: type {kind!r}; expected a GeoJSON FeatureCollection")
    plan = _Plan(path=path, mtime_ns=stat.st_mtime_ns, size_bytes=stat.st_size, body=body)
    cache.put(plan)
    return plan
