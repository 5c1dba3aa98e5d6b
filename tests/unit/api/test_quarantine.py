"""GET /api/quarantine: admins see what the fusion node quarantined; payloads only when asked, bounded, audited."""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient

from sed.api.routes.quarantine import PAYLOAD_PREVIEW_BYTES
from sed.store import Store


@pytest.fixture
def entries(store: Store) -> None:
    now_ns = time.time_ns()  # recent: the app's clip retention also expires old quarantine entries
    for n in range(3):
        store.quarantine.add(
            sensor_id=f"pole-{n}",
            received_at_ns=now_ns + n,
            reason="store",
            detail=f"IntegrityError: {n}",
            payload=bytes([n]) * (PAYLOAD_PREVIEW_BYTES + 100),
            message_type="Detection",
            message_id=f"pole-{n}:1",
        )


@pytest.mark.usefixtures("entries")
def test_admins_list_quarantined_messages_newest_first_without_payloads(
    client: TestClient, admin: dict[str, str], operator: dict[str, str]
) -> None:
    assert client.get("/api/quarantine").status_code == 401
    assert client.get("/api/quarantine", headers=operator).status_code == 403
    response = client.get("/api/quarantine", params={"limit": 2, "offset": 0}, headers=admin)
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 3
    assert [e["message_id"] for e in page["entries"]] == ["pole-2:1", "pole-1:1"]
    first = page["entries"][0]
    assert first["reason"] == "store" and first["payload_bytes"] == PAYLOAD_PREVIEW_BYTES + 100
    assert first["payload_base64"] is None
    only = client.get("/api/quarantine", params={"sensor_id": "pole-0"}, headers=admin).json()
    assert only["total"] == 1 and only["entries"][0]["sensor_id"] == "pole-0"


@pytest.mark.usefixtures("entries")
def test_payloads_come_only_when_asked_bounded_and_audited(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    response = client.get("/api/quarantine", params={"payload": True, "limit": 1}, headers=admin)
    (entry,) = response.json()["entries"]
    assert base64.b64decode(entry["payload_base64"]) == b"\x02" * PAYLOAD_PREVIEW_BYTES
    (audit,) = store.accounts.audit_entries(action="quarantine.payload")
    assert audit.username == "alice"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"offset": 2**63}])
def test_out_of_range_paging_is_a_422_not_a_500(client: TestClient, admin: dict[str, str], params: dict) -> None:
    assert client.get("/api/quarantine", params=params, headers=admin).status_code == 422
