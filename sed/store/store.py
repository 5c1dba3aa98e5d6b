"""Storage of detections, incidents, sensors and clips: SQLite embedded, PostgreSQL in production.

The fusion node writes, the API reads; both go through :class:`Store`, so no SQL lives
anywhere else. Writes are idempotent where the wire is (a resent detection is stored once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sed import wire
from sed.errors import WireError
from sed.store import migrate
from sed.store import tables as t
from sed.store.accounts import Accounts
from sed.store.area import Area
from sed.store.evidence import Evidence
from sed.store.quarantine import Quarantine
from sed.store.webhooks import Webhooks


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoredDetection:
    detection: wire.Detection
    received_at_ns: int
    incident_id: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SensorRecord:
    sensor_id: str
    position: wire.Position | None
    last_seen_ns: int
    heartbeat: wire.Heartbeat | None
    description: str | None = None
    noisy_labels: tuple[wire.Label, ...] = ()  # classes the fusion node flags it noisy for


class ReviewAction(enum.StrEnum):
    """What an operator can do with an incident; all but ``note`` set its status."""

    ACKNOWLEDGE = "acknowledge"
    CONFIRM = "confirm"
    FALSE_ALARM = "false_alarm"
    NOTE = "note"


#: Detections an incident links per statement (:meth:`Store.save_incident`).
LINK_BATCH = 64
_TOUCH_SENSOR = (
    t.sensors.update()
    .where(t.sensors.c.sensor_id == sa.bindparam("sid"))
    .values(
        last_seen_ns=sa.bindparam("seen"),
        x_m=sa.bindparam("x"),
        y_m=sa.bindparam("y"),
        z_m=sa.bindparam("z"),
    )
)
_LINK_DETECTIONS = t.detections.update().where(
    t.detections.c.detection_id.in_([sa.bindparam(f"d{k}") for k in range(LINK_BATCH)])
)

#: The status each review action leaves an incident in.
STATUS_AFTER: dict[ReviewAction, wire.IncidentStatus] = {
    ReviewAction.ACKNOWLEDGE: wire.IncidentStatus.ACKNOWLEDGED,
    ReviewAction.CONFIRM: wire.IncidentStatus.CONFIRMED,
    ReviewAction.FALSE_ALARM: wire.IncidentStatus.FALSE_ALARM,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Review:
    review_id: int
    incident_id: str
    username: str
    action: ReviewAction
    text: str | None
    at_ns: int


class Store:
    """Database access for every component.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path.sqlite`` or ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        """Open the database and bring its schema to the current revision (Alembic)."""
        self.url = url
        is_sqlite = url.startswith("sqlite")
        self.engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30} if is_sqlite else {},
            pool_pre_ping=not is_sqlite,
        )
        if is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate.upgrade(self.engine)
        self.accounts = Accounts(self.engine)
        self.evidence = Evidence(self.engine)
        self.webhooks = Webhooks(self.engine)
        self.quarantine = Quarantine(self.engine)
        self._batch = threading.local()  # the open transaction of :meth:`batch`, per thread

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes (fusion)

    def add_detection(self, detection: wire.Detection, *, received_at_ns: int) -> bool:
        """Store a detection; ``False`` (and no change) if its id is already stored."""
        return self._insert_once(t.detections, _detection_row(detection, received_at_ns))

    def add_detections(self, received: Sequence[tuple[wire.Detection, int]]) -> list[bool]:
        """Store detections, each with its ``received_at_ns``, and note their sensors as seen, in one transaction.

        Returns one flag per detection: ``True`` if it was new (a detection whose id is
        already stored, or that comes again later in ``received``, is ``False`` and changes
        nothing). Any error rolls the whole batch back.
        """
        if not received:
            return []
        first: dict[str, int] = {}
        for k, (detection, _) in enumerate(received):
            first.setdefault(detection.detection_id, k)
        rows = [_detection_row(received[k][0], received[k][1]) for k in first.values()]
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        key = t.detections.c.detection_id
        with self._transaction() as conn:
            # One INSERT … ON CONFLICT DO NOTHING RETURNING per batch: the ids it returns are the new ones.
            inserted = {
                row[0]
                for row in conn.execute(dialect.insert(t.detections).on_conflict_do_nothing().returning(key), rows)
            }
            seen: dict[str, tuple[wire.Position, int]] = {}
            for detection, received_at_ns in received:
                if detection.detection_id in inserted:
                    seen[detection.sensor_id] = (
                        detection.position,
                        max(received_at_ns, seen.get(detection.sensor_id, (None, 0))[1]),
                    )
            if seen:
                known = set(
                    conn.execute(
                        sa.select(t.sensors.c.sensor_id).where(t.sensors.c.sensor_id.in_(list(seen)))
                    ).scalars()
                )
                values = [
                    {"sid": s, "seen": at_ns, "x": p.x_m, "y": p.y_m, "z": p.z_m}
                    for s, (p, at_ns) in sorted(seen.items())
                ]
                if known:
                    conn.execute(_TOUCH_SENSOR, [v for v in values if v["sid"] in known])
                if missing := [v for v in values if v["sid"] not in known]:
                    conn.execute(
                        t.sensors.insert(),
                        [
                            {
                                "sensor_id": v["sid"],
                                "last_seen_ns": v["seen"],
                                "x_m": v["x"],
                                "y_m": v["y"],
                                "z_m": v["z"],
                            }
                            for v in missing
                        ],
                    )
        return [k == first[d.detection_id] and d.detection_id in inserted for k, (d, _) in enumerate(received)]

    def unassigned_among(self, detection_ids: Sequence[str]) -> set[str]:
        """Those of ``detection_ids`` that are stored and held by no incident (a resent detection the
        fusion node must associate again rather than drop)."""
        found: set[str] = set()
        ids = list(dict.fromkeys(detection_ids))
        with self.engine.connect() as conn:
            for i in range(0, len(ids), LINK_BATCH):
                chunk = ids[i : i + LINK_BATCH]
                query = sa.select(t.detections.c.detection_id).where(
                    t.detections.c.detection_id.in_(chunk), t.detections.c.incident_id.is_(None)
                )
                found.update(conn.execute(query).scalars())
        return found

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write this thread makes inside the block (e.g. the incidents
        of one association turn): committed at its end, all rolled back if it raises."""
        if getattr(self._batch, "conn", None) is not None:  # nested: part of the outer one
            yield
            return
        with self.engine.begin() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """The thread's open :meth:`batch`, or a transaction of its own."""
        conn = getattr(self._batch, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as conn:
            yield conn

    def discard_detection(self, detection_id: str) -> bool:
        """Undo :meth:`add_detection` of a detection no incident holds (the fusion node could not
        associate it); ``False`` if there is no such unassigned detection."""
        statement = t.detections.delete().where(
            t.detections.c.detection_id == detection_id, t.detections.c.incident_id.is_(None)
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def add_clip(self, clip: wire.EvidenceClip, *, received_at_ns: int) -> bool:
        """Store an evidence clip; ``False`` if one is already stored for the detection."""
        row = {
            "detection_id": clip.detection_id,
            "sensor_id": clip.sensor_id,
            "start_time_ns": clip.start_time_ns,
            "sample_rate_hz": clip.sample_rate_hz,
            "codec": clip.codec,
            "data": clip.data,
            "received_at_ns": received_at_ns,
        }
        return self._insert_once(t.clips, row)

    def _insert_once(self, table: sa.Table, row: dict[str, object]) -> bool:
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        key = next(iter(table.primary_key.columns))
        # RETURNING, not rowcount: psycopg reports -1 rows for INSERT … ON CONFLICT DO NOTHING.
        statement = dialect.insert(table).values(**row).on_conflict_do_nothing().returning(key)
        with self.engine.begin() as conn:
            return conn.execute(statement).first() is not None

    def record_heartbeat(self, heartbeat: wire.Heartbeat, *, received_at_ns: int) -> None:
        """Remember a sensor's latest heartbeat (and position, when it sends one)."""
        self._upsert_sensor(heartbeat.sensor_id, heartbeat.position, received_at_ns, wire.encode(heartbeat))

    def touch_sensor(self, sensor_id: str, position: wire.Position, *, seen_at_ns: int) -> None:
        """Note that a sensor spoke (a detection), keeping its last heartbeat."""
        self._upsert_sensor(sensor_id, position, seen_at_ns, None)

    def _upsert_sensor(
        self, sensor_id: str, position: wire.Position | None, seen_ns: int, heartbeat: bytes | None
    ) -> None:
        values: dict[str, object] = {"last_seen_ns": seen_ns}
        if position is not None:
            values |= {"x_m": position.x_m, "y_m": position.y_m, "z_m": position.z_m}
        if heartbeat is not None:
            values["heartbeat"] = heartbeat
        with self.engine.begin() as conn:
            updated = conn.execute(t.sensors.update().where(t.sensors.c.sensor_id == sensor_id).values(**values))
            if updated.rowcount == 0:
                conn.execute(t.sensors.insert().values(sensor_id=sensor_id, **values))

    def save_incident(self, incident: wire.Incident, *, updated_at_ns: int) -> bool:
        """Insert or update an incident and link its detections, in one transaction.

        Returns ``False``, changing nothing, when a later :attr:`~sed.wire.Incident.revision`
        of it is already stored (an update that arrived out of order); an equal revision is
        written again. A ``merged`` incident links no detections: they belong to the
        incident it was merged into, whichever of the two is saved first.
        """
        position = incident.position
        cov = incident.covariance_m2 or [None, None, None]
        values = {
            "label": str(incident.label),
            "score": incident.score,
            "origin_time_ns": incident.origin_time_ns,
            "x_m": position.x_m if position else None,
            "y_m": position.y_m if position else None,
            "z_m": position.z_m if position else None,
            "uncertainty_m": incident.uncertainty_m,
            "cov_xx_m2": cov[0],
            "cov_xy_m2": cov[1],
            "cov_yy_m2": cov[2],
            "n_shots": incident.n_shots,
            "priority": str(incident.priority),  # the node's policy may upgrade it; the status is the operators'
            "stage": str(incident.stage),
            "merged_into": incident.merged_into,
            "revision": incident.revision,
            "updated_at_ns": updated_at_ns,
        }
        key = t.incidents.c.incident_id == incident.incident_id
        with self._transaction() as conn:
            # The status belongs to the operators once the incident exists: a new shot does not reset it.
            updated = conn.execute(
                t.incidents.update().where(key, t.incidents.c.revision <= incident.revision).values(**values)
            )
            if updated.rowcount == 0:
                if conn.execute(sa.select(t.incidents.c.revision).where(key)).first() is not None:
                    return False  # a later revision is stored
                conn.execute(
                    t.incidents.insert().values(
                        incident_id=incident.incident_id,
                        created_at_ns=incident.created_at_ns,
                        status=str(incident.status),
                        **values,
                    )
                )
            ids = [] if incident.stage is wire.IncidentStage.MERGED else list(incident.detection_ids)
            if ids:
                # A fixed number of placeholders, padded by repeating ids: an `IN` list as long
                # as the incident would give each incident size its own statement text, and the
                # driver keeps the last 128 prepared per connection, each as large as its list
                # (a storm that kept one incident growing grew that memory without bound).
                batches = [ids[i : i + LINK_BATCH] for i in range(0, len(ids), LINK_BATCH)]
                conn.execute(
                    _LINK_DETECTIONS.values(incident_id=incident.incident_id),
                    [{f"d{k}": batch[k % len(batch)] for k in range(LINK_BATCH)} for batch in batches],
                )
        return True

    # ------------------------------------------------------------------ reads (API)

    def list_incidents(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        labels: Iterable[wire.Label] | None = None,
        statuses: Iterable[wire.IncidentStatus] | None = None,
        area: Area | None = None,
        limit: int = 100,
        offset: int = 0,
        priorities: Iterable[wire.IncidentPriority] | None = None,
        stages: Iterable[wire.IncidentStage] | None = None,
    ) -> list[wire.Incident]:
        """Incidents, newest origin first, filtered by origin time, class, status, priority, stage and area.

        An area excludes incidents without a position. Without ``stages``, ``merged``
        incidents (superseded by the one their detections joined) are left out.
        """
        query = sa.select(t.incidents).order_by(t.incidents.c.origin_time_ns.desc()).limit(limit).offset(offset)
        if since_ns is not None:
            query = query.where(t.incidents.c.origin_time_ns >= since_ns)
        if until_ns is not None:
            query = query.where(t.incidents.c.origin_time_ns < until_ns)
        if labels:
            query = query.where(t.incidents.c.label.in_([str(label) for label in labels]))
        if statuses:
            query = query.where(t.incidents.c.status.in_([str(status) for status in statuses]))
        if priorities:
            query = query.where(t.incidents.c.priority.in_([str(priority) for priority in priorities]))
        if stages:
            query = query.where(t.incidents.c.stage.in_([str(stage) for stage in stages]))
        else:
            query = query.where(t.incidents.c.stage != str(wire.IncidentStage.MERGED))
        if area is not None:
            for column, bound, lower in (
                (t.incidents.c.x_m, area.x_min_m, True),
                (t.incidents.c.x_m, area.x_max_m, False),
                (t.incidents.c.y_m, area.y_min_m, True),
                (t.incidents.c.y_m, area.y_max_m, False),
            ):
                if bound is not None:
                    query = query.where(column >= bound if lower else column <= bound)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            members = self._members(conn, [row["incident_id"] for row in rows])
        return [_incident(row, members.get(row["incident_id"], [])) for row in rows]

    def get_incident(self, incident_id: str) -> wire.Incident | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.incidents).where(t.incidents.c.incident_id == incident_id)).mappings().first()
            )
            if row is None:
                return None
            return _incident(row, self._members(conn, [incident_id]).get(incident_id, []))

    def review_incident(
        self, incident_id: str, *, username: str, action: ReviewAction, text: str | None, at_ns: int
    ) -> wire.Incident | None:
        """Record an operator's review and set the incident's status, in one transaction.

        Returns the updated incident, or ``None`` if there is no such incident.
        """
        with self.engine.begin() as conn:
            if action in STATUS_AFTER:
                changed = conn.execute(
                    t.incidents.update()
                    .where(t.incidents.c.incident_id == incident_id)
                    .values(status=str(STATUS_AFTER[action]), updated_at_ns=at_ns)
                ).rowcount
            else:
                changed = conn.execute(
                    sa.select(sa.func.count()).select_from(t.incidents).where(t.incidents.c.incident_id == incident_id)
                ).scalar_one()
            if not changed:
                return None
            conn.execute(
                t.reviews.insert().values(
                    incident_id=incident_id, username=username, action=str(action), text=text, at_ns=at_ns
                )
            )
        return self.get_incident(incident_id)

    def reviews_of(self, incident_id: str) -> list[Review]:
        """The review trail of an incident, oldest first."""
        query = sa.select(t.reviews).where(t.reviews.c.incident_id == incident_id).order_by(t.reviews.c.review_id)
        with self.engine.connect() as conn:
            return [
                Review(
                    review_id=row["review_id"],
                    incident_id=row["incident_id"],
                    username=row["username"],
                    action=ReviewAction(row["action"]),
                    text=row["text"],
                    at_ns=row["at_ns"],
                )
                for row in conn.execute(query).mappings()
            ]

    def describe_sensor(self, sensor_id: str, description: str | None) -> bool:
        """Set an admin's note on a sensor (where it stands); ``False`` if the sensor is unknown."""
        with self.engine.begin() as conn:
            statement = t.sensors.update().where(t.sensors.c.sensor_id == sensor_id).values(description=description)
            return conn.execute(statement).rowcount == 1

    def set_noisy_labels(self, sensor_id: str, labels: Iterable[wire.Label]) -> bool:
        """Set the classes the fusion node flags a sensor noisy for (empty: none); ``False`` if unknown."""
        with self.engine.begin() as conn:
            statement = t.sensors.update().where(t.sensors.c.sensor_id == sensor_id)
            return conn.execute(statement.values(noisy_labels=_joined(labels))).rowcount == 1

    def replace_noisy_labels(self, flagged: Mapping[str, Iterable[wire.Label]]) -> None:
        """Flag exactly these sensors, clearing every other flag (a fusion node starting afresh)."""
        with self.engine.begin() as conn:
            conn.execute(t.sensors.update().where(t.sensors.c.noisy_labels.is_not(None)).values(noisy_labels=None))
            for sensor_id, labels in flagged.items():
                conn.execute(
                    t.sensors.update().where(t.sensors.c.sensor_id == sensor_id).values(noisy_labels=_joined(labels))
                )

    def forget_sensor(self, sensor_id: str) -> bool:
        """Remove a decommissioned sensor from the list (it reappears if it speaks again)."""
        with self.engine.begin() as conn:
            return conn.execute(t.sensors.delete().where(t.sensors.c.sensor_id == sensor_id)).rowcount == 1

    def detections_of(self, incident_id: str) -> list[StoredDetection]:
        """The detections that contributed to an incident, earliest arrival first."""
        query = (
            sa.select(t.detections)
            .where(t.detections.c.incident_id == incident_id)
            .order_by(t.detections.c.arrival_time_ns)
        )
        with self.engine.connect() as conn:
            return [_stored_detection(row) for row in conn.execute(query).mappings()]

    def unassigned_detections(self, *, received_since_ns: int) -> list[StoredDetection]:
        """Detections received since ``received_since_ns`` that no incident holds, earliest received first
        (what a restarted fusion node resumes associating)."""
        query = (
            sa.select(t.detections)
            .where(t.detections.c.incident_id.is_(None), t.detections.c.received_at_ns >= received_since_ns)
            .order_by(t.detections.c.received_at_ns)
        )
        with self.engine.connect() as conn:
            return [_stored_detection(row) for row in conn.execute(query).mappings()]

    def open_incidents(self, *, updated_since_ns: int) -> list[tuple[wire.Incident, list[wire.Detection]]]:
        """Incidents updated since ``updated_since_ns`` that operators have not closed (confirmed or
        dismissed), each with its detections, oldest update first (what a restarted fusion node takes
        back so that late detections join them)."""
        closed = [str(wire.IncidentStatus.CONFIRMED), str(wire.IncidentStatus.FALSE_ALARM)]
        query = (
            sa.select(t.incidents)
            .where(t.incidents.c.updated_at_ns >= updated_since_ns, t.incidents.c.status.not_in(closed))
            .order_by(t.incidents.c.updated_at_ns)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            held: dict[str, list[wire.Detection]] = {}
            ids = [row["incident_id"] for row in rows]
            for i in range(0, len(ids), LINK_BATCH):
                members = sa.select(t.detections).where(t.detections.c.incident_id.in_(ids[i : i + LINK_BATCH]))
                for row in conn.execute(members.order_by(t.detections.c.arrival_time_ns)).mappings():
                    held.setdefault(row["incident_id"], []).append(_stored_detection(row).detection)
        result = []
        for row in rows:
            detections = held.get(row["incident_id"], [])
            members_of = [(d.detection_id, d.sensor_id) for d in detections]
            result.append((_incident(row, members_of), detections))
        return result

    def recent_detections(self, *, received_since_ns: int) -> list[tuple[str, wire.Label, int]]:
        """``(sensor_id, label, received_at_ns)`` of the detections received since then, earliest first
        (what a restarted fusion node replays into its sensors' detection rates)."""
        columns = (t.detections.c.sensor_id, t.detections.c.label, t.detections.c.received_at_ns)
        query = (
            sa.select(*columns)
            .where(t.detections.c.received_at_ns >= received_since_ns)
            .order_by(t.detections.c.received_at_ns)
        )
        with self.engine.connect() as conn:
            return [
                (sensor_id, wire.Label(label), at_ns)
                for sensor_id, label, at_ns in conn.execute(query)
                if label in _LABELS
            ]

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def count_detections(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.detections)).scalar_one())

    def list_sensors(self) -> list[SensorRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.sensors).order_by(t.sensors.c.sensor_id)).mappings().all()
        return [
            SensorRecord(
                sensor_id=row["sensor_id"],
                position=None if row["x_m"] is None else wire.Position(x_m=row["x_m"], y_m=row["y_m"], z_m=row["z_m"]),
                last_seen_ns=row["last_seen_ns"],
                heartbeat=_heartbeat(row["heartbeat"]),
                description=row["description"],
                noisy_labels=_split_labels(row["noisy_labels"]),
            )
            for row in rows
        ]

    @staticmethod
    def _members(conn: sa.Connection, incident_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        if not incident_ids:
            return {}
        query = (
            sa.select(t.detections.c.incident_id, t.detections.c.detection_id, t.detections.c.sensor_id)
            .where(t.detections.c.incident_id.in_(list(incident_ids)))
            .order_by(t.detections.c.arrival_time_ns)
        )
        members: dict[str, list[tuple[str, str]]] = {}
        for incident_id, detection_id, sensor_id in conn.execute(query):
            members.setdefault(incident_id, []).append((detection_id, sensor_id))
        return members


def is_transient(exc: BaseException) -> bool:
    """The database could not be reached or was busy (a retry may succeed), as opposed to a
    value it refused (a retry of the same message fails the same way)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.DisconnectionError | sa.exc.TimeoutError
    )


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _incident(row: sa.RowMapping, members: list[tuple[str, str]]) -> wire.Incident:
    located = row["x_m"] is not None
    return wire.Incident(
        incident_id=row["incident_id"],
        label=wire.Label(row["label"]),
        score=row["score"],
        origin_time_ns=row["origin_time_ns"],
        position=wire.Position(x_m=row["x_m"], y_m=row["y_m"], z_m=row["z_m"]) if located else None,
        uncertainty_m=row["uncertainty_m"],
        covariance_m2=[row["cov_xx_m2"], row["cov_xy_m2"], row["cov_yy_m2"]] if row["cov_xx_m2"] is not None else None,
        detection_ids=[d for d, _ in members],
        sensor_ids=sorted({s for _, s in members}),
        status=wire.IncidentStatus(row["status"]),
        created_at_ns=row["created_at_ns"],
        n_shots=row["n_shots"],
        priority=wire.IncidentPriority(row["priority"]),
        stage=wire.IncidentStage(row["stage"]),
        merged_into=row["merged_into"],
        revision=row["revision"],
    )


_LABELS = frozenset(str(label) for label in wire.Label)


def _joined(labels: Iterable[wire.Label]) -> str | None:
    return ",".join(sorted({str(label) for label in labels})) or None


def _split_labels(text: str | None) -> tuple[wire.Label, ...]:
    # A class no longer in the schema is dropped rather than failing the sensor list.
    return tuple(wire.Label(part) for part in (text or "").split(",") if part in _LABELS)


def _detection_row(detection: wire.Detection, received_at_ns: int) -> dict[str, object]:
    return {
        "detection_id": detection.detection_id,
        "sensor_id": detection.sensor_id,
        "label": str(detection.label),
        "score": detection.score,
        "arrival_time_ns": detection.arrival_time_ns,
        "arrival_uncertainty_ns": detection.arrival_uncertainty_ns,
        "duration_ms": detection.duration_ms,
        "peak_dbfs": detection.peak_dbfs,
        "x_m": detection.position.x_m,
        "y_m": detection.position.y_m,
        "z_m": detection.position.z_m,
        "clock_status": str(detection.clock_status),
        "model_version": detection.model_version,
        "received_at_ns": received_at_ns,
        "incident_id": None,
        "directness": detection.directness,
    }


def _stored_detection(row: sa.RowMapping) -> StoredDetection:
    detection = wire.Detection(
        detection_id=row["detection_id"],
        sensor_id=row["sensor_id"],
        label=wire.Label(row["label"]),
        score=row["score"],
        arrival_time_ns=row["arrival_time_ns"],
        arrival_uncertainty_ns=row["arrival_uncertainty_ns"],
        duration_ms=row["duration_ms"],
        peak_dbfs=row["peak_dbfs"],
        position=wire.Position(x_m=row["x_m"], y_m=row["y_m"], z_m=row["z_m"]),
        clock_status=wire.ClockStatus(row["clock_status"]),
        model_version=row["model_version"],
        directness=row["directness"],
    )
    return StoredDetection(detection=detection, received_at_ns=row["received_at_ns"], incident_id=row["incident_id"])


def _heartbeat(data: bytes | None) -> wire.Heartbeat | None:
    if data is None:
        return None
    try:
        message = wire.decode(data)
    except WireError:
        return None
    return message if isinstance(message, wire.Heartbeat) else None


__all__ = [
    "STATUS_AFTER",
    "Area",
    "Review",
    "ReviewAction",
    "SensorRecord",
    "Store",
    "StoredDetection",
    "is_transient",
]
