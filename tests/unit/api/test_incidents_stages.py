"""Alert first, refine later through the API: stages in listings and in the live push."""

from __future__ import annotations

import msgspec
from fastapi.testclient import TestClient

from sed import wire
from sed.api.server import ApiServer
from sed.store import Store
from tests.unit.api.test_live import SseClient, served  # noqa: F401  (the fixture)
from tests.unit.store.test_store import detection, incident

Stage = wire.IncidentStage


def _staged(base: wire.Incident, stage: Stage, revision: int, **changes: object) -> wire.Incident:
    return msgspec.structs.replace(base, stage=stage, revision=revision, **changes)


def _provisional(incident_id: str, ids: list[str], *, origin_ns: int) -> wire.Incident:
    return _staged(
        incident(incident_id, ids, origin_ns=origin_ns),
        Stage.PROVISIONAL,
        0,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
    )


def test_incidents_carry_stage_revision_and_merge_target_and_merged_ones_are_listed_only_on_request(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    for n in range(3):
        store.add_detection(detection(n, f"pole-{n}"), received_at_ns=1)
    store.save_incident(_provisional("i1", ["pole-0:0"], origin_ns=100), updated_at_ns=2)
    store.save_incident(_provisional("i2", ["pole-2:2"], origin_ns=101), updated_at_ns=2)
    listed = client.get("/api/incidents", headers=operator).json()
    assert [(i["incident_id"], i["stage"], i["revision"], i["merged_into"]) for i in listed] == [
        ("i2", "provisional", 0, None),
        ("i1", "provisional", 0, None),
    ]
    located = _staged(incident("i1", ["pole-0:0", "pole-1:1", "pole-2:2"], origin_ns=100), Stage.LOCATED, 3)
    store.save_incident(located, updated_at_ns=3)
    store.save_incident(
        _staged(_provisional("i2", [], origin_ns=101), Stage.MERGED, 1, merged_into="i1"), updated_at_ns=3
    )

    listed = client.get("/api/incidents", headers=operator).json()
    assert [(i["incident_id"], i["stage"], i["revision"]) for i in listed] == [("i1", "located", 3)]
    assert listed[0]["position"]["x_m"] == 1.0 and listed[0]["detection_ids"] == ["pole-0:0", "pole-1:1", "pole-2:2"]
    merged = client.get("/api/incidents", params={"stage": "merged"}, headers=operator).json()
    assert [(i["incident_id"], i["merged_into"]) for i in merged] == [("i2", "i1")]
    detail = client.get("/api/incidents/i2", headers=operator).json()
    assert (detail["stage"], detail["merged_into"], detail["revision"]) == ("merged", "i1", 1)
    refused = client.get("/api/incidents", params={"stage": "guessing"}, headers=operator)
    assert refused.status_code == 422 and "stage" in refused.text


def test_every_stage_of_an_incident_is_pushed_live_including_its_merge(
    served: tuple[ApiServer, str],  # noqa: F811
    store: Store,
    operator: dict[str, str],
) -> None:
    server, url = served
    feed = server._app.state.feed
    live = SseClient(url, operator)
    try:
        for n in range(3):
            store.add_detection(detection(n, f"pole-{n}"), received_at_ns=1)
        updates = [
            _provisional("i1", ["pole-0:0"], origin_ns=100),
            _staged(incident("i1", ["pole-0:0", "pole-1:1", "pole-2:2"], origin_ns=100), Stage.LOCATED, 1),
            _staged(_provisional("i1", [], origin_ns=100), Stage.MERGED, 2, merged_into="i0"),
        ]
        seen = []
        for update in updates:  # one at a time: the push reads the incident back from the store
            store.save_incident(update, updated_at_ns=2)
            feed.announce_incident(update)
            pushed = live.next_event()["incident"]
            seen.append((pushed["incident_id"], pushed["stage"], pushed["revision"], pushed["merged_into"]))
    finally:
        live.close()
    assert seen == [("i1", "provisional", 0, None), ("i1", "located", 1, None), ("i1", "merged", 2, "i0")]
