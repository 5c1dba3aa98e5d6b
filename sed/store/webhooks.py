"""Webhook rules (which incidents notify which URL) and the record of each delivery.

A delivery is of one stage of an incident (:class:`~sed.wire.IncidentStage`): a rule
notifies a receiver at most once per (incident, stage), so the provisional alert and the
located (or unlocated) one are two deliveries.
"""

from __future__ import annotations

import dataclasses
import enum

import sqlalchemy as sa

from sed import wire
from sed.store import tables as t
from sed.store.accounts import ConflictError
from sed.store.area import Area


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed
    SUPERSEDED = "superseded"  # not sent: the incident was merged into another before it went out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule:
    """Notify ``url`` of incidents of ``labels`` (empty: any) scoring at least ``min_score`` inside ``area``."""

    rule_id: int
    name: str
    url: str
    labels: tuple[wire.Label, ...]
    min_score: float
    area: Area
    secret: str | None
    enabled: bool
    created_at_ns: int

    def matches(self, incident: wire.Incident) -> bool:
        return (
            self.enabled
            and (not self.labels or incident.label in self.labels)
            and incident.score >= self.min_score
            and self.area.contains(incident.position)
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Delivery:
    rule_id: int
    incident_id: str
    stage: wire.IncidentStage
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    updated_at_ns: int


class Webhooks:
    """Rules and deliveries on the store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add_rule(
        self,
        *,
        name: str,
        url: str,
        labels: tuple[wire.Label, ...],
        min_score: float,
        area: Area,
        secret: str | None,
        now_ns: int,
    ) -> Rule:
        """Create an enabled rule.

        Raises
        ------
        ConflictError
            If a rule of that name exists.
        """
        values = {
            "name": name,
            "url": url,
            "labels": ",".join(str(label) for label in labels),
            "min_score": min_score,
            **dataclasses.asdict(area),
            "secret": secret,
            "enabled": True,
            "created_at_ns": now_ns,
        }
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.webhook_rules.c.rule_id).where(t.webhook_rules.c.name == name)).first():
                raise ConflictError(f"webhook rule {name!r} already exists")
            rule_id = conn.execute(t.webhook_rules.insert().values(**values)).inserted_primary_key[0]
        rule = self.get_rule(int(rule_id))
        assert rule is not None
        return rule

    def get_rule(self, rule_id: int) -> Rule | None:
        with self.engine.connect() as conn:
            query = sa.select(t.webhook_rules).where(t.webhook_rules.c.rule_id == rule_id)
            row = conn.execute(query).mappings().first()
        return None if row is None else _rule(row)

    def list_rules(self) -> list[Rule]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.webhook_rules).order_by(t.webhook_rules.c.rule_id)).mappings()
            return [_rule(row) for row in rows]

    def set_enabled(self, rule_id: int, enabled: bool) -> bool:
        with self.engine.begin() as conn:
            statement = t.webhook_rules.update().where(t.webhook_rules.c.rule_id == rule_id).values(enabled=enabled)
            return conn.execute(statement).rowcount == 1

    def delete_rule(self, rule_id: int) -> bool:
        with self.engine.begin() as conn:
            conn.execute(t.webhook_deliveries.delete().where(t.webhook_deliveries.c.rule_id == rule_id))
            return conn.execute(t.webhook_rules.delete().where(t.webhook_rules.c.rule_id == rule_id)).rowcount == 1

    def claim(self, rule_id: int, incident_id: str, *, stage: wire.IncidentStage, now_ns: int) -> bool:
        """Start a delivery of one stage of an incident for a rule; ``False`` if one was already
        started (at most once per stage)."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(t.webhook_deliveries.c.delivery_id).where(*_delivery_key(rule_id, incident_id, stage))
            ).first()
            if exists is not None:
                return False
            try:
                conn.execute(
                    t.webhook_deliveries.insert().values(
                        rule_id=rule_id,
                        incident_id=incident_id,
                        stage=str(stage),
                        status=str(DeliveryStatus.PENDING),
                        attempts=0,
                        updated_at_ns=now_ns,
                    )
                )
            except sa.exc.IntegrityError:  # another process claimed it between the check and the insert
                return False
        return True

    def record_attempt(
        self,
        rule_id: int,
        incident_id: str,
        *,
        stage: wire.IncidentStage,
        status: DeliveryStatus,
        error: str | None,
        now_ns: int,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.webhook_deliveries.update()
                .where(*_delivery_key(rule_id, incident_id, stage))
                .values(
                    status=str(status),
                    attempts=t.webhook_deliveries.c.attempts + 1,
                    last_error=None if error is None else error[:1000],
                    updated_at_ns=now_ns,
                )
            )

    def deliveries(self, *, rule_id: int | None = None, status: DeliveryStatus | None = None) -> list[Delivery]:
        query = sa.select(t.webhook_deliveries).order_by(t.webhook_deliveries.c.delivery_id)
        if rule_id is not None:
            query = query.where(t.webhook_deliveries.c.rule_id == rule_id)
        if status is not None:
            query = query.where(t.webhook_deliveries.c.status == str(status))
        with self.engine.connect() as conn:
            return [
                Delivery(
                    rule_id=row["rule_id"],
                    incident_id=row["incident_id"],
                    stage=wire.IncidentStage(row["stage"]),
                    status=DeliveryStatus(row["status"]),
                    attempts=row["attempts"],
                    last_error=row["last_error"],
                    updated_at_ns=row["updated_at_ns"],
                )
                for row in conn.execute(query).mappings()
            ]


def _delivery_key(rule_id: int, incident_id: str, stage: wire.IncidentStage) -> tuple[sa.ColumnElement[bool], ...]:
    c = t.webhook_deliveries.c
    return (c.rule_id == rule_id, c.incident_id == incident_id, c.stage == str(stage))


def _rule(row: sa.RowMapping) -> Rule:
    return Rule(
        rule_id=row["rule_id"],
        name=row["name"],
        url=row["url"],
        labels=tuple(wire.Label(label) for label in row["labels"].split(",") if label),
        min_score=row["min_score"],
        area=Area(x_min_m=row["x_min_m"], x_max_m=row["x_max_m"], y_min_m=row["y_min_m"], y_max_m=row["y_max_m"]),
        secret=row["secret"],
        enabled=row["enabled"],
        created_at_ns=row["created_at_ns"],
    )


__all__ = ["Delivery", "DeliveryStatus", "Rule", "Webhooks"]
