"""Incidents of a simulated city scored against its ground truth (:mod:`sed.bench.fusion_sim`).

:func:`score` takes every incident update with the time it came out (in process,
:mod:`sed.bench.fusion_drive`; or received from a real node's feed, :mod:`sed.bench.fusion_e2e`,
mapped to the scenario's time base), keeps the last version of each incident as its final
one, and matches them to the sources by :data:`MATCHING_RULE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sed import wire
from sed.bench.fusion_drive import Update
from sed.bench.fusion_sim import Scenario
from sed.units import NS_PER_S

#: A located incident matches a source of its class within this horizontal distance, m ...
MATCH_DISTANCE_M = 20.0
#: ... and with its origin time within this much of the emission, s.
MATCH_TIME_S = 0.1
#: A source is isolated when no other source (any class) is this close in space, m, and time, s.
ISOLATION_M, ISOLATION_S = 800.0, 3.0
#: The rule in one sentence, for reports.
MATCHING_RULE = (
    f"A source is located when some final located incident of its class lies within {MATCH_DISTANCE_M:g} m "
    f"(horizontal) of it with its origin time within {MATCH_TIME_S:g} s of the emission; a located incident that "
    f"matches no source by that rule is a ghost; a source is isolated when no other source of any class is within "
    f"{ISOLATION_M:g} m and {ISOLATION_S:g} s; first alert = the first incident update holding any of a source's "
    f"detections, located = the first update matching it by the rule, both from its first detection's arrival "
    f"at the node."
)


class _SourceIndex:
    """Sources sorted by emission time, for matching by a time window then distance and class."""

    def __init__(self, scenario: Scenario, source_ids: np.ndarray) -> None:
        sources = [scenario.sources[i] for i in source_ids]
        order = np.argsort([s.emission_ns for s in sources], kind="stable")
        self.ids = source_ids[order]
        self.t_ns = np.array([sources[i].emission_ns for i in order], dtype=np.int64)
        self.xy = np.array([sources[i].position_m[:2] for i in order], dtype=np.float64).reshape(-1, 2)
        self.label = np.array([str(sources[i].label) for i in order], dtype=object)
        self._window_ns = round(MATCH_TIME_S * NS_PER_S)

    def matching(self, incident: wire.Incident, *, offset_ns: int = 0) -> np.ndarray:
        """Ids of the sources a located ``incident`` matches (empty when unlocated)."""
        if incident.position is None:
            return self.ids[:0]
        t_ns = incident.origin_time_ns - offset_ns
        lo = np.searchsorted(self.t_ns, t_ns - self._window_ns, side="left")
        hi = np.searchsorted(self.t_ns, t_ns + self._window_ns, side="right")
        if lo == hi:
            return self.ids[:0]
        d_m = np.hypot(self.xy[lo:hi, 0] - incident.position.x_m, self.xy[lo:hi, 1] - incident.position.y_m)
        ok = (d_m <= MATCH_DISTANCE_M) & (self.label[lo:hi] == str(incident.label))
        return self.ids[lo:hi][ok]


def isolated_mask(scenario: Scenario) -> np.ndarray:
    """Per source: no other source of any class within :data:`ISOLATION_M` and :data:`ISOLATION_S`.

    Returns
    -------
    np.ndarray [shape=(n_sources,), dtype=bool], indexed by ``source_id``
    """
    n = len(scenario.sources)
    t_s = np.array([(s.emission_ns - scenario.start_ns) / NS_PER_S for s in scenario.sources]).reshape(-1)
    xy = np.array([s.position_m[:2] for s in scenario.sources], dtype=np.float64).reshape(-1, 2)
    order = np.argsort(t_s, kind="stable")
    isolated = np.ones(n, dtype=bool)
    # Only sources within ISOLATION_S of each other can spoil each other: scan a sorted time window.
    lo = np.searchsorted(t_s[order], t_s[order] - ISOLATION_S, side="left")
    hi = np.searchsorted(t_s[order], t_s[order] + ISOLATION_S, side="right")
    for rank, i in enumerate(order):
        others = order[lo[rank] : hi[rank]]
        others = others[others != i]
        if others.size and np.any(np.hypot(*(xy[others] - xy[i]).T) <= ISOLATION_M):
            isolated[i] = False
    return isolated


#: Poles whose positions spread less than this across their best-fit line are collinear, m.
MIN_CROSS_SPREAD_M = 1.0


def _locatable(scenario: Scenario, heard_by: Sequence[str], min_sensors: int) -> bool:
    """Heard by ``min_sensors`` poles or more, not all on one line: arrival times at collinear
    poles cannot tell the source from its mirror image across that line (a row of poles at
    the city's edge hearing a sound from beyond it)."""
    if len(heard_by) < min_sensors:
        return False
    xy = np.array([scenario.poles[p][:2] for p in heard_by], dtype=np.float64)
    return float(np.linalg.svd(xy - xy.mean(axis=0), compute_uv=False)[-1]) >= MIN_CROSS_SPREAD_M


def _percentiles_s(values_ns: Sequence[int]) -> dict[str, float | None]:
    if not values_ns:
        return {"p50": None, "p99": None, "n": 0}
    p50, p99 = np.percentile(np.asarray(values_ns, dtype=np.float64) / NS_PER_S, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "n": len(values_ns)}


def _fraction(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def score(
    scenario: Scenario,
    updates: Sequence[Update],
    *,
    min_sensors: int = 3,
    until_ns: int | None = None,
    origin_offset_ns: int = 0,
) -> dict[str, Any]:
    """Figures of one run against the scenario's ground truth; see :data:`MATCHING_RULE`.

    Parameters
    ----------
    scenario : Scenario
    updates : sequence of Update
        Every incident update with the time it came out, in the scenario's time base.
    min_sensors : int
        Sources heard by at least this many poles, not all on one line, are *locatable*.
    until_ns : int, optional
        Score only sources whose every detection had reached the node by then (a run cut
        short); incidents are all scored.
    origin_offset_ns : int
        Subtracted from each incident's origin time (a replay that shifted the detections'
        times to the wall clock).

    Returns
    -------
    dict
        Counts; ``located_fraction`` over every source in scope, ``..._locatable`` over
        those heard by ``min_sensors`` poles or more not all on one line, ``..._isolated`` over the isolated
        locatable ones; ``ghost_fraction`` of the located incidents; ``first_alert_s``
        and ``located_s`` delays (p50, p99, n) in s.
    """
    first_rx_ns: dict[int, int] = {}
    last_rx_ns: dict[int, int] = {}
    for h in scenario.heard:
        s = scenario.source_of[h.detection.detection_id]
        if s is not None:
            first_rx_ns.setdefault(s, h.received_at_ns)
            last_rx_ns[s] = max(last_rx_ns.get(s, 0), h.received_at_ns)
    in_scope = np.array(
        [
            s.source_id
            for s in scenario.sources
            if until_ns is None or last_rx_ns.get(s.source_id, s.emission_ns) <= until_ns
        ],
        dtype=np.int64,
    )
    index = _SourceIndex(scenario, in_scope)
    isolated = isolated_mask(scenario)
    locatable = np.array([_locatable(scenario, s.heard_by, min_sensors) for s in scenario.sources], dtype=bool)

    final: dict[str, wire.Incident] = {}
    first_alert_ns: dict[int, int] = {}
    first_located_ns: dict[int, int] = {}
    seen_detections: set[str] = set()
    for update in sorted(updates, key=lambda u: u.at_ns):
        incident = update.incident
        final[incident.incident_id] = incident
        for detection_id in incident.detection_ids:
            if detection_id in seen_detections:
                continue
            seen_detections.add(detection_id)
            s = scenario.source_of.get(detection_id)
            if s is not None:
                first_alert_ns.setdefault(s, update.at_ns)
        for s in index.matching(incident, offset_ns=origin_offset_ns):
            first_located_ns.setdefault(int(s), update.at_ns)

    located_sources: set[int] = set()
    n_located_incidents = n_ghosts = n_unlocated = 0
    for incident in final.values():
        if incident.position is None:
            n_unlocated += 1
            continue
        n_located_incidents += 1
        matched = index.matching(incident, offset_ns=origin_offset_ns)
        located_sources.update(int(s) for s in matched)
        n_ghosts += matched.size == 0
    scope = [int(s) for s in in_scope]
    hit = np.zeros(len(scenario.sources), dtype=bool)
    hit[list(located_sources)] = True
    mask = np.zeros(len(scenario.sources), dtype=bool)
    mask[scope] = True
    alert_delays = [first_alert_ns[s] - first_rx_ns[s] for s in scope if s in first_alert_ns and s in first_rx_ns]
    located_delays = [first_located_ns[s] - first_rx_ns[s] for s in scope if s in first_located_ns and s in first_rx_ns]
    n_spurious = sum(1 for v in scenario.source_of.values() if v is None)
    return {
        "sources": int(mask.sum()),
        "sources_locatable": int((mask & locatable).sum()),
        "sources_isolated": int((mask & isolated).sum()),
        "sources_isolated_locatable": int((mask & isolated & locatable).sum()),
        "sources_located": int((mask & hit).sum()),
        "located_fraction": _fraction(int((mask & hit).sum()), int(mask.sum())),
        "located_fraction_locatable": _fraction(int((mask & hit & locatable).sum()), int((mask & locatable).sum())),
        "located_fraction_isolated": _fraction(
            int((mask & hit & isolated & locatable).sum()), int((mask & isolated & locatable).sum())
        ),
        "sources_never_alerted": sum(1 for s in scope if s not in first_alert_ns),
        "incidents": len(final),
        "incidents_located": n_located_incidents,
        "incidents_unlocated": n_unlocated,
        "ghosts": n_ghosts,
        "ghost_fraction": _fraction(n_ghosts, n_located_incidents),
        "incident_updates": len(updates),
        "detections": len(scenario.heard),
        "detections_spurious": n_spurious,
        "first_alert_s": _percentiles_s(alert_delays),
        "located_s": _percentiles_s(located_delays),
    }


__all__ = ["ISOLATION_M", "ISOLATION_S", "MATCHING_RULE", "MATCH_DISTANCE_M", "MATCH_TIME_S", "isolated_mask", "score"]
