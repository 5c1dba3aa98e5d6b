"""Webhook deliveries: each stage of each rule's matching incidents POSTed once, signed, retried with back-off.

The body is JSON::

    {"event": "incident", "rule": name, "stage": stage, "revision": revision, "incident": IncidentOut}

``stage`` is the stage this delivery announces (:class:`~sed.wire.IncidentStage`):
``provisional`` (alert first: the first detections, position perhaps unknown) and then
``located`` or ``unlocated`` (final). ``revision`` is the incident's revision in this
body: a retry sends the incident as it is then, so a late provisional retry may carry a
newer revision than the stage it announces (and ``incident.stage`` says where it is now);
a receiver keeps the highest revision per incident. Headers:

- ``X-Sed-Timestamp``: UTC seconds when the attempt was signed;
- ``X-Sed-Signature``: ``sha256=`` + hex HMAC-SHA256 over ``"<timestamp>." + body`` with the
  rule's secret (the server's ``api.webhook_secret`` when the rule has none);
- ``X-Sed-Delivery``: ``<rule_id>:<incident_id>:<stage>`` (the same on every retry, for
  de-duplication).

A receiver recomputes the HMAC, compares in constant time and rejects old timestamps.
Each stage of an incident is delivered to a rule at most once, the first time the
incident matches in that stage (refinements as more poles join are not sent again);
every attempt is recorded. A ``merged`` incident is never sent: the incident that took
its detections is; a delivery still pending when its incident is merged is recorded
``superseded``. A rule with an area gets a provisional incident only once it has a
position inside the area. Only alerts are delivered: an ``unconfirmed`` incident is
delivered when the fusion node upgrades it to an alert, a ``suppressed`` one never
(:mod:`sed.fusion.policy`).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from sed import wire
from sed.api.metrics import ApiMetrics
from sed.api.schemas import IncidentOut, incident_out
from sed.config import ApiSection, SiteSection
from sed.store import DeliveryStatus, Rule, Store
from sed.supervise import DEFAULT_STALL_AFTER_S, TURN_S, Liveness

log = logging.getLogger("sed.api.webhooks")

SIGNATURE_HEADER = "X-Sed-Signature"
TIMESTAMP_HEADER = "X-Sed-Timestamp"
DELIVERY_HEADER = "X-Sed-Delivery"


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The ``X-Sed-Signature`` value of a body."""
    digest = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp_s: int, body: bytes, signature: str, *, max_age_s: float = 300.0) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent."""
    fresh = abs(time.time() - timestamp_s) <= max_age_s
    return fresh and hmac.compare_digest(sign(secret, timestamp_s, body), signature)


class WebhookDispatcher:
    """A thread that delivers and retries; :meth:`on_incident` is an :class:`IncidentFeed` listener.

    Parameters
    ----------
    store : Store
    api : ApiSection
        Timeout, attempts, back-off and the default secret.
    site : SiteSection
    metrics : ApiMetrics, optional
    """

    def __init__(self, store: Store, api: ApiSection, site: SiteSection, metrics: ApiMetrics | None = None) -> None:
        self.store = store
        self.api = api
        self.site = site
        self.metrics = metrics
        self._due: list[tuple[int, int, int, str, wire.IncidentStage]] = []  # (due_ns, attempt, rule, incident, stage)
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        #: For ``/healthz``: the last turn and the deliveries scheduled. One POST may take
        #: ``webhook_timeout_s``; only a turn longer than that and the usual bound is a stall.
        self.liveness = Liveness(
            "webhooks", stall_after_s=api.webhook_timeout_s + DEFAULT_STALL_AFTER_S, backlog=self._n_due
        )

    def start(self) -> None:
        """Resume deliveries left pending by a previous run, then serve."""
        for delivery in self.store.webhooks.deliveries(status=DeliveryStatus.PENDING):
            self._schedule(
                time.time_ns(), delivery.attempts + 1, delivery.rule_id, delivery.incident_id, delivery.stage
            )
        self._thread = self.liveness.start(self._run, thread_name="sed-webhooks")

    def stop(self) -> None:
        self.liveness.stopping()
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self.api.webhook_timeout_s + 5.0)

    def on_incident(self, incident: wire.Incident, _out: IncidentOut) -> None:
        if incident.priority is not wire.IncidentPriority.ALERT:
            return  # the false-alarm policy holds it back; an upgrade announces it again
        stage = incident.stage
        assert stage is not None  # derived on construction
        if stage is wire.IncidentStage.MERGED:
            return  # superseded: the incident that took its detections is announced on its own
        now_ns = time.time_ns()
        for rule in self.store.webhooks.list_rules():
            if rule.matches(incident) and self.store.webhooks.claim(
                rule.rule_id, incident.incident_id, stage=stage, now_ns=now_ns
            ):
                self._schedule(now_ns, 1, rule.rule_id, incident.incident_id, stage)

    def _schedule(self, due_ns: int, attempt: int, rule_id: int, incident_id: str, stage: wire.IncidentStage) -> None:
        with self._wake:
            heapq.heappush(self._due, (due_ns, attempt, rule_id, incident_id, stage))
            self._wake.notify()

    def _n_due(self) -> int:
        with self._wake:
            return len(self._due)

    def _run(self) -> None:
        while True:
            self.liveness.beat()
            with self._wake:
                if self._stop:
                    return
                if not self._due or self._due[0][0] > time.time_ns():
                    # Turn (and beat) at least every TURN_S, even with nothing due.
                    until_due_s = TURN_S if not self._due else (self._due[0][0] - time.time_ns()) / 1e9
                    self._wake.wait(min(TURN_S, max(0.0, until_due_s)))
                    continue
                _, attempt, rule_id, incident_id, stage = heapq.heappop(self._due)
            try:
                self._attempt(attempt, rule_id, incident_id, stage)
            except Exception:
                log.exception("webhook delivery %s:%s crashed", rule_id, incident_id)

    def _attempt(self, attempt: int, rule_id: int, incident_id: str, stage: wire.IncidentStage) -> None:
        rule = self.store.webhooks.get_rule(rule_id)
        incident = self.store.get_incident(incident_id)
        if rule is None or incident is None:
            return  # the rule was deleted (its deliveries with it) or the incident is gone
        if incident.stage is wire.IncidentStage.MERGED:
            self.store.webhooks.record_attempt(
                rule_id,
                incident_id,
                stage=stage,
                status=DeliveryStatus.SUPERSEDED,
                error=f"merged into incident {incident.merged_into} before delivery",
                now_ns=time.time_ns(),
            )
            return
        error = self._post(rule, incident, stage)
        now_ns = time.time_ns()
        if error is None:
            status = DeliveryStatus.DELIVERED
        elif attempt >= self.api.webhook_max_attempts:
            status = DeliveryStatus.FAILED
            log.warning(
                "webhook %r gave up on incident %s after %d attempts: %s", rule.name, incident_id, attempt, error
            )
        else:
            status = DeliveryStatus.PENDING
            delay_ns = int(self.api.webhook_retry_initial_s * 2 ** (attempt - 1) * 1e9)
            self._schedule(now_ns + delay_ns, attempt + 1, rule_id, incident_id, stage)
        self.store.webhooks.record_attempt(rule_id, incident_id, stage=stage, status=status, error=error, now_ns=now_ns)
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels(outcome="delivered" if error is None else "error").inc()

    def _post(self, rule: Rule, incident: wire.Incident, stage: wire.IncidentStage) -> str | None:
        """One attempt; ``None`` on a 2xx answer, else what went wrong."""
        secret = rule.secret or self.api.webhook_secret
        if secret is None:
            return "no signing secret: the rule has none and api.webhook_secret is unset"
        body = json.dumps(
            {
                "event": "incident",
                "rule": rule.name,
                "stage": str(stage),
                "revision": incident.revision,
                "incident": incident_out(incident, self.site).model_dump(mode="json"),
            }
        ).encode()
        timestamp_s = int(time.time())
        request = urllib.request.Request(
            rule.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "sed-webhooks",
                TIMESTAMP_HEADER: str(timestamp_s),
                SIGNATURE_HEADER: sign(secret, timestamp_s, body),
                DELIVERY_HEADER: f"{rule.rule_id}:{incident.incident_id}:{stage}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.api.webhook_timeout_s) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            return f"{rule.url} answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return f"{rule.url}: {getattr(exc, 'reason', exc)}"


__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookDispatcher", "sign", "verify"]
