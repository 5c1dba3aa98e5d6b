"""Webhook rules match by class, confidence and area; each incident is claimed once per rule."""

from __future__ import annotations

import pytest

from sed import wire
from sed.store import Area, ConflictError, DeliveryStatus, Store
from tests.unit.store.test_store import incident


def test_rule_matches_class_min_score_and_area(store: Store) -> None:
    rule = store.webhooks.add_rule(
        name="shots downtown",
        url="http://127.0.0.1:9/hook",
        labels=(wire.Label.GUNSHOT,),
        min_score=0.8,
        area=Area(x_min_m=0, x_max_m=10),
        secret="s" * 20,
        now_ns=1,
    )
    assert rule.matches(incident("a", [], origin_ns=1))  # gunshot, 0.9, at (1, 2)
    assert not rule.matches(incident("b", [], origin_ns=1, label=wire.Label.SCREAM))
    low = incident("c", [], origin_ns=1)
    assert not rule.matches(wire.Incident(**{**{f: getattr(low, f) for f in low.__struct_fields__}, "score": 0.5}))
    far = incident("d", [], origin_ns=1)
    far = wire.Incident(
        **{**{f: getattr(far, f) for f in far.__struct_fields__}, "position": wire.Position(x_m=50, y_m=0)}
    )
    assert not rule.matches(far)
    assert store.webhooks.set_enabled(rule.rule_id, False)
    assert not store.webhooks.get_rule(rule.rule_id).matches(incident("a", [], origin_ns=1))
    with pytest.raises(ConflictError):
        store.webhooks.add_rule(
            name="shots downtown", url="http://x", labels=(), min_score=0, area=Area(), secret=None, now_ns=2
        )


def test_delivery_is_claimed_once_and_attempts_are_counted(store: Store) -> None:
    rule = store.webhooks.add_rule(
        name="all", url="http://x", labels=(), min_score=0, area=Area(), secret=None, now_ns=1
    )
    assert rule.labels == () and rule.area.is_unbounded()
    located = wire.IncidentStage.LOCATED
    assert store.webhooks.claim(rule.rule_id, "i1", stage=located, now_ns=2) is True
    assert store.webhooks.claim(rule.rule_id, "i1", stage=located, now_ns=3) is False
    store.webhooks.record_attempt(
        rule.rule_id, "i1", stage=located, status=DeliveryStatus.PENDING, error="HTTP 500", now_ns=4
    )
    store.webhooks.record_attempt(
        rule.rule_id, "i1", stage=located, status=DeliveryStatus.DELIVERED, error=None, now_ns=5
    )
    (delivery,) = store.webhooks.deliveries(rule_id=rule.rule_id)
    assert (delivery.stage, delivery.status, delivery.attempts, delivery.last_error) == (
        located,
        DeliveryStatus.DELIVERED,
        2,
        None,
    )
    assert store.webhooks.deliveries(status=DeliveryStatus.PENDING) == []
    assert store.webhooks.delete_rule(rule.rule_id) is True
    assert store.webhooks.deliveries() == []


def test_each_stage_of_an_incident_is_claimed_once_and_recorded_apart(store: Store) -> None:
    rule = store.webhooks.add_rule(
        name="all", url="http://x", labels=(), min_score=0, area=Area(), secret=None, now_ns=1
    )
    provisional, located = wire.IncidentStage.PROVISIONAL, wire.IncidentStage.LOCATED
    assert store.webhooks.claim(rule.rule_id, "i1", stage=provisional, now_ns=2) is True
    assert store.webhooks.claim(rule.rule_id, "i1", stage=located, now_ns=3) is True
    assert store.webhooks.claim(rule.rule_id, "i1", stage=provisional, now_ns=4) is False
    store.webhooks.record_attempt(
        rule.rule_id, "i1", stage=located, status=DeliveryStatus.DELIVERED, error=None, now_ns=5
    )
    by_stage = {d.stage: (d.status, d.attempts) for d in store.webhooks.deliveries(rule_id=rule.rule_id)}
    assert by_stage == {provisional: (DeliveryStatus.PENDING, 0), located: (DeliveryStatus.DELIVERED, 1)}
