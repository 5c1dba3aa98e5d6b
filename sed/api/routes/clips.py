"""Evidence clips: the audio and its spectrogram; every access is written to the audit log first."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response

from sed.api.deps import CurrentUser, MetricsDep, StoreDep, remote_addr
from sed.api.params import StoredId, invalid
from sed.api.spectrogram import spectrogram_png
from sed.errors import AudioFormatError
from sed.store import StoredClip

router = APIRouter(prefix="/api/clips", tags=["clips"])

#: Clips are personal data: no browser or proxy may keep a copy.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MEDIA_TYPES = {"flac": "audio/flac"}
#: Characters a ``filename="…"`` fallback keeps as they are; any other becomes ``_``.
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def content_disposition(filename: str, *, disposition: str = "inline") -> str:
    """A ``Content-Disposition`` header value for any file name (RFC 6266).

    Detection ids come from sensors and may hold any character: the exact name goes in
    ``filename*`` (RFC 5987: UTF-8, percent-encoded, so CR/LF or quotes cannot break the
    header), and an ASCII-only ``filename`` stands in for clients that ignore ``filename*``.
    """
    fallback = _ASCII_SAFE.sub("_", filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{detection_id}",
    summary="The evidence clip of a detection (audited)",
    response_class=Response,
    responses={200: {"content": {"audio/flac": {}}}, 404: {"description": "No clip (never sent, or expired)."}},
)
def get_clip(
    detection_id: StoredId, request: Request, store: StoreDep, metrics: MetricsDep, user: CurrentUser
) -> Response:
    clip = _audited_clip(detection_id, request, store, metrics, user, action="clip.play", kind="audio")
    return Response(
        clip.data,
        media_type=MEDIA_TYPES.get(clip.codec, "application/octet-stream"),
        headers={**NO_STORE, "Content-Disposition": content_disposition(f"{detection_id}.{clip.codec}")},
    )


@router.get(
    "/{detection_id}/spectrogram.png",
    summary="The clip's log-mel spectrogram (audited)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No clip."}},
)
def get_spectrogram(
    detection_id: StoredId, request: Request, store: StoreDep, metrics: MetricsDep, user: CurrentUser
) -> Response:
    clip = _audited_clip(detection_id, request, store, metrics, user, action="clip.spectrogram", kind="spectrogram")
    try:
        png = spectrogram_png(clip.data)
    except AudioFormatError as exc:
        raise invalid("path", "detection_id", msg=f"the stored clip is not readable audio: {exc}") from None
    return Response(png, media_type="image/png", headers=NO_STORE)


def _audited_clip(
    detection_id: str,
    request: Request,
    store: StoreDep,
    metrics: MetricsDep,
    user: CurrentUser,
    *,
    action: str,
    kind: str,
) -> StoredClip:
    """The stored clip of a detection (404 when there is none), its access already audited
    as ``action`` and counted in the ``kind`` access metric."""
    clip = store.evidence.get_clip(detection_id)
    if clip is None:
        raise HTTPException(404, f"no clip for detection {detection_id} (never sent, or deleted by retention)")
    store.accounts.audit(
        username=user.username,
        action=action,
        target=detection_id,
        at_ns=time.time_ns(),
        remote_addr=remote_addr(request),
    )
    metrics.clip_accesses.labels(kind=kind).inc()
    return clip
