"""Alert first, refine later in the store, on SQLite and PostgreSQL: stages, merges, revisions, directness."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from sed import wire
from sed.store import Store, migrate
from tests.unit.store.test_store import detection, incident

Stage = wire.IncidentStage


def _stage(base: wire.Incident, stage: Stage, revision: int, **changes: object) -> wire.Incident:
    return msgspec.structs.replace(base, stage=stage, revision=revision, **changes)


def test_an_incident_moves_through_its_stages_in_place(store: Store) -> None:
    for n in range(3):
        store.add_detection(detection(n, f"pole-{n}"), received_at_ns=10)
    first = _stage(
        incident("i1", ["pole-0:0"], origin_ns=100),
        Stage.PROVISIONAL,
        0,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
    )
    assert store.save_incident(first, updated_at_ns=200) is True
    loaded = store.get_incident("i1")
    assert (loaded.stage, loaded.revision, loaded.position, loaded.merged_into) == (Stage.PROVISIONAL, 0, None, None)

    located = _stage(incident("i1", ["pole-0:0", "pole-1:1", "pole-2:2"], origin_ns=100), Stage.LOCATED, 2)
    assert store.save_incident(located, updated_at_ns=300) is True
    loaded = store.get_incident("i1")
    assert (loaded.stage, loaded.revision, loaded.position) == (Stage.LOCATED, 2, located.position)
    assert loaded.detection_ids == ["pole-0:0", "pole-1:1", "pole-2:2"]
    assert [i.incident_id for i in store.list_incidents()] == ["i1"]


def test_an_older_revision_never_overwrites_a_newer_one(store: Store) -> None:
    for n in range(3):
        store.add_detection(detection(n, f"pole-{n}"), received_at_ns=10)
    newer = _stage(incident("i1", ["pole-0:0", "pole-1:1", "pole-2:2"], origin_ns=100), Stage.LOCATED, 5)
    older = _stage(
        incident("i1", ["pole-0:0"], origin_ns=100),
        Stage.PROVISIONAL,
        4,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
    )
    assert store.save_incident(newer, updated_at_ns=300) is True
    assert store.save_incident(older, updated_at_ns=400) is False  # arrived late: dropped
    loaded = store.get_incident("i1")
    assert (loaded.stage, loaded.revision, loaded.position) == (Stage.LOCATED, 5, newer.position)
    assert store.save_incident(newer, updated_at_ns=500) is True  # the same revision again is idempotent


def test_a_merged_incident_is_hidden_by_default_and_its_detections_stay_with_the_survivor(store: Store) -> None:
    for n in range(3):
        store.add_detection(detection(n, f"pole-{n}"), received_at_ns=10)
    survivor = _stage(incident("i1", ["pole-0:0", "pole-1:1", "pole-2:2"], origin_ns=100), Stage.LOCATED, 1)
    loser = _stage(
        incident("i2", ["pole-2:2"], origin_ns=101),
        Stage.PROVISIONAL,
        0,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
    )
    store.save_incident(loser, updated_at_ns=200)
    store.save_incident(survivor, updated_at_ns=300)
    store.save_incident(_stage(loser, Stage.MERGED, 1, merged_into="i1"), updated_at_ns=300)

    assert [i.incident_id for i in store.list_incidents()] == ["i1"]
    assert store.get_incident("i1").detection_ids == ["pole-0:0", "pole-1:1", "pole-2:2"]
    (merged,) = store.list_incidents(stages=[Stage.MERGED])
    assert (merged.incident_id, merged.stage, merged.merged_into, merged.revision) == ("i2", Stage.MERGED, "i1", 1)
    both = store.list_incidents(stages=[Stage.MERGED, Stage.LOCATED])
    assert [i.incident_id for i in both] == ["i2", "i1"]
    assert store.get_incident("i2").stage is Stage.MERGED  # still readable by id, for the live push


def test_a_detection_keeps_its_directness(store: Store) -> None:
    store.add_detection(msgspec.structs.replace(detection(1), directness=-2.5), received_at_ns=10)
    (stored,) = store.unassigned_detections(received_since_ns=0)
    assert stored.detection.directness == -2.5


@pytest.mark.parametrize(("x_m", "stage"), [(5.0, Stage.LOCATED), (None, Stage.UNLOCATED)])
def test_incidents_stored_before_stages_are_final_after_the_upgrade(
    tmp_path: Path, x_m: float | None, stage: Stage
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # a database of the revision before stages, holding an incident
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.commit()
        conn.execute(
            sa.text(
                "INSERT INTO incidents (incident_id, label, score, origin_time_ns, x_m, y_m, z_m, n_shots, status, "
                "created_at_ns, updated_at_ns) VALUES ('old', 'gunshot', 0.9, 1, :x, :x, 0, 1, 'new', 1, 1)"
            ),
            {"x": x_m},
        )
        conn.execute(
            sa.text(
                "INSERT INTO webhook_rules (name, url, labels, min_score, enabled, created_at_ns) "
                "VALUES ('all', 'http://x', '', 0, 1, 1)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO webhook_deliveries (rule_id, incident_id, status, attempts, updated_at_ns) "
                "VALUES (1, 'old', 'delivered', 1, 1)"
            )
        )
        conn.commit()
    engine.dispose()
    store = Store(url)
    try:
        loaded = store.get_incident("old")
        assert (loaded.stage, loaded.revision, loaded.merged_into) == (stage, 0, None)
        (delivery,) = store.webhooks.deliveries()
        assert delivery.stage is stage
        # The stage it was delivered for is taken; the other final stage would be a new delivery.
        assert store.webhooks.claim(1, "old", stage=stage, now_ns=2) is False
        assert store.webhooks.claim(1, "old", stage=Stage.PROVISIONAL, now_ns=2) is True
    finally:
        store.close()
