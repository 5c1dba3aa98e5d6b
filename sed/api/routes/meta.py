"""What the dashboard and monitoring need besides incidents: the site, Prometheus metrics, the schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sed.api.deps import ConfigDep, CurrentUser, MetricsDep
from sed.api.schemas import SiteOut, site_out

router = APIRouter(tags=["meta"])


@router.get("/api/site", response_model=SiteOut, summary="Site name, geodetic origin and map tiles")
def site(config: ConfigDep, _user: CurrentUser) -> SiteOut:
    return site_out(config)


@router.get(
    "/metrics",
    summary="Prometheus metrics (any signed-in user; give Prometheus a token)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(metrics: MetricsDep, _user: CurrentUser) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", summary="This API's OpenAPI schema", include_in_schema=False)
def openapi(request: Request, _user: CurrentUser) -> dict[str, Any]:
    return request.app.openapi()
