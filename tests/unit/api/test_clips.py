"""Evidence-clip downloads name the file by RFC 6266 / RFC 5987, whatever the detection id holds."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote

import pytest
from fastapi.testclient import TestClient

from sed import wire
from sed.api.routes.clips import content_disposition
from sed.store import Store


@pytest.mark.parametrize(
    "detection_id", ["pole-1:7", "pôle-ü:1", "пост-3:1", "杆-1:2", "pole\r\nSet-Cookie: x=1", 'a"b;c']
)
def test_clip_of_any_stored_id_downloads_with_its_exact_name(
    client: TestClient, store: Store, operator: dict[str, str], detection_id: str
) -> None:
    # stored directly: ids like these came in before the wire schema bounded them
    clip = wire.EvidenceClip(
        detection_id=detection_id, sensor_id="pole-1", start_time_ns=1, sample_rate_hz=16000, data=b"fLaC-bytes"
    )
    # received now: the app's clip-retention job runs at start-up and deletes clips older than its window
    store.add_clip(clip, received_at_ns=time.time_ns())
    response = client.get(f"/api/clips/{quote(detection_id, safe='')}", headers=operator)
    assert response.status_code == 200 and response.content == b"fLaC-bytes"
    header = response.headers["content-disposition"]
    assert header.isascii() and "\r" not in header and "\n" not in header
    fallback, encoded = header.split("; filename*=UTF-8''")
    assert unquote(encoded, errors="strict") == f"{detection_id}.flac"
    assert fallback.startswith('inline; filename="') and fallback.count('"') == 2


def test_content_disposition_keeps_plain_names_readable_in_the_fallback() -> None:
    assert content_disposition("pole-1_7.flac", disposition="attachment") == (
        "attachment; filename=\"pole-1_7.flac\"; filename*=UTF-8''pole-1_7.flac"
    )
    assert content_disposition("pôle:1.flac").startswith('inline; filename="p_le_1.flac"')
