"""Incident life cycle: detections in, incidents out — alert first, refine later.

* **At once.** A detection that no pending detection could share a sound with becomes a
  ``provisional`` incident, returned by the next :meth:`IncidentBuilder.poll`; detections
  of neighbour poles that can have heard the same sound (:mod:`sed.fusion.neighbourhood`)
  join it, and each join is an update of the same incident id (``revision`` + 1).
* **Located.** A detection waits for its peers the spread of detection latencies
  (``association_wait_s``) plus the sound's travel time to the farthest pole that could
  have heard it too — the sound's neighbourhood, never the whole network — and is then
  associated with its neighbours' detections (:func:`~sed.fusion.seeded.associate_seed`):
  every peer is there by then, so one association per sound. The group's incident (the
  provisional holding most of its members) becomes ``located``; a provisional whose
  detections all went to another incident becomes ``merged`` into it (the dashboard
  removes it), and detections no group explains stay behind as an incident of their own.
* **Refined.** A later detection is first shown on its own (it may be a new sound); once
  its own wait is over and no group of pending detections explains it, it joins a recent
  located shot that predicts it (pole within hearing range, arrival within the timing
  tolerance) and the shot is solved again. Rounds of one class close in time and space
  are shots of one incident (``n_shots``). With ``association = "likelihood"`` the
  likelihood search over the neighbour poles' pending detections replaces the seeded
  consensus, and every group it finds is accepted.
* **Unlocated.** When every detection of a provisional incident has waited and none was
  located, it becomes ``unlocated``: the poles that heard it are the region, no point is
  invented.

One detection that makes association fail is set aside (:meth:`IncidentBuilder.take_failed`)
and the others go on.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import uuid
from collections.abc import Iterator, Sequence

import numpy as np

from sed import wire
from sed.config import FusionSection
from sed.fusion.associate import Group, associate
from sed.fusion.locate import Arrival, Solution, SolveStatus, locate
from sed.fusion.neighbourhood import PoleMap
from sed.fusion.open_incidents import OpenIncident, Pending, Shot, admit, arrival_of, to_wire
from sed.fusion.seeded import SeedSettings, associate_seed, compatible, fits
from sed.units import NS_PER_S, speed_of_sound_m_per_s

log = logging.getLogger("sed.fusion")
Stage = wire.IncidentStage
#: A seed is associated at most this often per poll (each time a group without it was found).
_MAX_GROUPS_PER_SEED = 4
#: Poles not heard and incidents no longer joinable are looked for this often, ns.
_TIDY_EVERY_NS = 500_000_000


class IncidentBuilder:
    """Turns a stream of detections into incident updates (see the module docstring).

    Parameters
    ----------
    config : FusionSection
    temperature_c : float
    site_radius_m : float > 0, optional
        Poles stand within this distance of the site origin: caps a detection's wait at
        the sound's transit across the site's diameter.
    wind_m_per_s : (float, float), optional
        Horizontal wind (x, y: where it blows to), m/s, for every solve; ``None``: still air.
    """

    def __init__(
        self,
        config: FusionSection,
        *,
        temperature_c: float,
        site_radius_m: float | None = None,
        wind_m_per_s: tuple[float, float] | None = None,
    ) -> None:
        self.config = config
        self.temperature_c = temperature_c
        self._c = speed_of_sound_m_per_s(temperature_c)
        self._wait_ns = int(config.association_wait_s * NS_PER_S)
        self._cap_ns = None if site_radius_m is None else int(2 * site_radius_m / self._c * NS_PER_S)
        self._settings = SeedSettings(
            temperature_c=temperature_c,
            tolerance_m=self._c * config.max_timing_error_ms / 1000,
            hearing_range_m=config.hearing_range_m,
            min_sensors=config.min_sensors,
            min_participation=config.min_participation,
            wind_m_per_s=wind_m_per_s,
        )
        self._poles = PoleMap(
            hearing_range_m=config.hearing_range_m, speed_m_per_s=self._c, max_age_s=config.position_max_age_s
        )
        self._pending: dict[str, Pending] = {}
        self._by_pole: dict[tuple[str, str], list[Pending]] = collections.defaultdict(list)
        self._due: list[tuple[int, int, str]] = []
        self._seq = itertools.count()
        self._open: list[OpenIncident] = []  # located and unlocated incidents still taking shots and joins
        self._shots: list[tuple[OpenIncident, Shot]] = []  # their shots, in the order they were located
        self._held: dict[str, OpenIncident] = {}  # detection id -> the incident showing it
        self._changed: dict[str, OpenIncident] = {}
        self._failed: list[tuple[wire.Detection, int]] = []
        self._tidy_at_ns = 0

    @property
    def n_pending(self) -> int:
        """Detections waiting for their peers (the fusion node's backlog)."""
        return len(self._pending)

    @property
    def transit_ns(self) -> int:
        """The longest wait any pole's sounds need beyond ``association_wait_s``, ns."""
        return self._reach_cap(self._poles.max_reach_ns())

    def admit(self, detection: wire.Detection) -> Arrival:
        """The detection's arrival if the builder can take it, without taking it (:func:`admit`)."""
        return admit(detection)

    def holds(self, detection_id: str) -> bool:
        """Is this detection pending or shown by an incident the builder still holds?"""
        return detection_id in self._held

    def add(self, detection: wire.Detection, *, received_at_ns: int) -> None:
        """Take a new detection; one the builder already holds (same id) is ignored.

        Raises
        ------
        WireError
            As :meth:`admit`, with nothing changed.
        """
        arrival = self.admit(detection)
        if detection.detection_id in self._held:
            return
        self.note_position(arrival.sensor_id, arrival.position_m, heard_at_ns=received_at_ns)
        timed = detection.clock_status is not wire.ClockStatus.UNSYNCED
        incident = self._provisional_for(arrival) if timed else None
        if incident is None:
            incident = self._new_incident(arrival.label, received_at_ns)
        self._pend(incident, arrival, detection, received_at_ns, timed=timed)
        self._show(incident, detection, received_at_ns)

    def note_position(self, sensor_id: str, position_m: tuple[float, float, float], *, heard_at_ns: int) -> None:
        """A pole spoke (a detection, or a heartbeat with its position) from ``position_m``."""
        self._poles.note(sensor_id, position_m, heard_at_ns=heard_at_ns)

    def poll(self, now_ns: int) -> list[wire.Incident]:
        """Associate what is due; return every incident created or changed since the last poll."""
        if now_ns >= self._tidy_at_ns:  # housekeeping needs no finer grain than this
            self._tidy_at_ns = now_ns + _TIDY_EVERY_NS
            self._poles.age_out(now_ns)
            self._forget_old(now_ns)
        while self._due and self._due[0][0] <= now_ns:
            _, _, detection_id = heapq.heappop(self._due)
            if (pending := self._pending.get(detection_id)) is None:
                continue
            # A neighbour first heard after this detection came may lengthen its wait.
            deadline_ns = (
                pending.received_at_ns
                + self._wait_ns
                + self._reach_cap(self._poles.reach_ns(pending.arrival.sensor_id))
            )
            if deadline_ns > pending.deadline_ns and deadline_ns > now_ns:
                pending.deadline_ns = deadline_ns
                heapq.heappush(self._due, (deadline_ns, next(self._seq), detection_id))
                continue
            self._settle(pending, now_ns)
        for incident, shot in self._shots:
            if shot.dirty and now_ns >= shot.settle_ns:
                self._resolve(incident, shot, now_ns)
        changed, self._changed = self._changed, {}
        return [to_wire(o) for o in changed.values()]

    def restore(self, incident: wire.Incident, detections: Sequence[wire.Detection], *, now_ns: int) -> None:
        """Take back a stored incident after a restart, so its detections are held and late ones can join it.

        A provisional incident's detections wait again (from ``now_ns``) for their peers;
        a located one of one shot is solved again from its detections, so late detections can
        join it (the rounds of a several-shot incident are not told apart again: it only holds
        its detections).
        """
        if incident.stage is Stage.MERGED or any(d.detection_id in self._held for d in detections):
            return
        o = OpenIncident(incident.incident_id, str(incident.label), incident.created_at_ns, revision=incident.revision)
        o.last_activity_ns = now_ns
        if incident.stage is Stage.PROVISIONAL:
            for detection in detections:
                self._held[detection.detection_id] = o
                self._add_restored(o, detection, now_ns)
            return
        o.stage = incident.stage or Stage.UNLOCATED
        arrivals = tuple(arrival_of(d) for d in detections if d.clock_status is not wire.ClockStatus.UNSYNCED)
        solution = self._locate(arrivals) if len(arrivals) >= 3 and incident.n_shots == 1 else None
        if o.stage is Stage.LOCATED and solution is not None and solution.status is SolveStatus.LOCATED:
            o.shots.append(Shot(Group(label=o.label, arrivals=arrivals, solution=solution), settle_ns=now_ns))
            self._shots.append((o, o.shots[-1]))
        for detection in detections:
            o.detections[detection.detection_id] = detection
            self._held[detection.detection_id] = o
        self._open.append(o)

    def take_failed(self) -> list[tuple[wire.Detection, int]]:
        """Detections set aside because associating them failed (with their receive times), since the last call."""
        failed, self._failed = self._failed, []
        return failed

    def evict_failing(self, now_ns: int) -> list[tuple[wire.Detection, int]]:
        """After :meth:`poll` raised outside any one detection: set aside what failed and start afresh."""
        return self.take_failed() + self.clear()

    def clear(self) -> list[tuple[wire.Detection, int]]:
        """Forget every pending detection and open incident (stored already); returns what was pending."""
        pending = [(p.detection, p.received_at_ns) for p in self._pending.values()]
        self._pending, self._due, self._open, self._shots, self._held, self._changed = {}, [], [], [], {}, {}
        self._by_pole.clear()
        return pending

    # ----------------------------------------------------------------- association

    def _candidates(self, arrival: Arrival) -> Iterator[Pending]:
        """Pending timed detections of the arrival's class that can share its sound, earliest first per pole."""
        for pole_id, distance_m in self._poles.neighbours(arrival.sensor_id).items():
            for other in self._by_pole.get((arrival.label, pole_id), ()):
                if other.timed and compatible(
                    arrival, other.arrival, distance_m, c=self._c, tolerance_m=self._settings.tolerance_m
                ):
                    yield other

    def _provisional_for(self, arrival: Arrival) -> OpenIncident | None:
        """The provisional incident every timed detection of which can share this arrival's sound.

        Against all of them, not any one: under overlapping sounds a chain of pairwise
        compatible detections would otherwise grow one provisional across the city (and two
        detections of one pole are two sounds).
        """
        neighbours = self._poles.neighbours(arrival.sensor_id)
        tried: set[int] = set()
        for peer in self._candidates(arrival):
            incident = peer.incident
            if id(incident) in tried or incident.stage is not Stage.PROVISIONAL:
                continue
            tried.add(id(incident))
            if all(
                other.arrival.sensor_id != arrival.sensor_id
                and (distance_m := neighbours.get(other.arrival.sensor_id)) is not None
                and compatible(other.arrival, arrival, distance_m, c=self._c, tolerance_m=self._settings.tolerance_m)
                for other in incident.pending.values()
                if other.timed
            ):
                return incident
        return None

    def _settle(self, seed: Pending, now_ns: int) -> None:
        """Associate a seed; one that no group explains leaves the pending set (its wait is over)."""
        try:
            for _ in range(_MAX_GROUPS_PER_SEED):
                if not seed.timed:
                    break
                groups = self._groups_for(seed)
                for group in groups:
                    self._accept(group, now_ns)
                if not groups or seed.detection.detection_id not in self._pending:
                    break
        except Exception as exc:  # one detection that breaks association is set aside, the rest go on
            log.error("associating detection %r failed: %s", seed.detection.detection_id, exc)
            log.debug("associating detection %r failed", seed.detection.detection_id, exc_info=True)
            self._unpend(seed)
            seed.incident.detections.pop(seed.detection.detection_id, None)
            self._held.pop(seed.detection.detection_id, None)
            self._failed.append((seed.detection, seed.received_at_ns))
            self._finish_if_done(seed.incident, now_ns)
            return
        if seed.detection.detection_id in self._pending and seed.timed and self._join_shot(seed, now_ns):
            return
        self._unpend(seed)
        self._finish_if_done(seed.incident, now_ns)

    def _groups_for(self, seed: Pending) -> list[Group]:
        """The groups to accept around a seed: its own (neighbourhood), or every one the likelihood
        search finds among the pending detections of its neighbour poles."""
        same_pole = [
            p.arrival for p in self._by_pole.get((seed.arrival.label, seed.arrival.sensor_id), ()) if p is not seed
        ]
        if self.config.association == "neighbourhood":
            candidates = [p.arrival for p in self._candidates(seed.arrival)] + same_pole
            group = associate_seed(seed.arrival, candidates, settings=self._settings, poles_near=self._poles_near)
            return [] if group is None else [group]
        # Every pending detection of the neighbour poles, not only those time-compatible with the
        # seed: rounds fired from one place support each other in the likelihood score.
        pool = [seed.arrival, *same_pole]
        for pole_id in self._poles.neighbours(seed.arrival.sensor_id):
            pool += [p.arrival for p in self._by_pole.get((seed.arrival.label, pole_id), ()) if p.timed]
        groups, _ = associate(
            pool,
            temperature_c=self.temperature_c,
            max_timing_error_s=self.config.max_timing_error_ms / 1000,
            min_sensors=self.config.min_sensors,
            method="likelihood",
        )
        if self._settings.wind_m_per_s is not None:  # the likelihood search solves in still air
            groups = [dataclasses.replace(g, solution=self._locate(g.arrivals)) for g in groups]
        return [g for g in groups if g.solution.status is SolveStatus.LOCATED]

    def _poles_near(self, point_m: tuple[float, float, float], radius_m: float) -> Iterator[str]:
        return (pole_id for pole_id, _, _ in self._poles.within(point_m, radius_m))

    def _accept(self, group: Group, now_ns: int) -> None:
        members = [self._pending[a.detection_id] for a in (*group.arrivals, *group.duplicates)]
        for member in members:
            self._unpend(member)
        counts = collections.Counter(m.incident for m in members)
        target = self._incident_for_shot(group)
        if target is None:
            target = max(counts, key=lambda o: (counts[o], -o.created_at_ns))
            self._split_off(target, {m.detection.detection_id for m in members}, now_ns)
            target.stage = Stage.LOCATED
            self._open.append(target)
        for provisional in counts:
            if provisional is target:
                continue
            for member in members:
                provisional.detections.pop(member.detection.detection_id, None)
            if not provisional.detections:
                provisional.stage, provisional.merged_into = Stage.MERGED, target.incident_id
                self._touch(provisional, now_ns)
            else:
                self._finish_if_done(provisional, now_ns)
        shot = Shot(group, settle_ns=max(m.deadline_ns for m in members))
        target.shots.append(shot)
        self._shots.append((target, shot))
        for member in members:
            self._show(target, member.detection, now_ns)

    def _split_off(self, incident: OpenIncident, keep: set[str], now_ns: int) -> None:
        """A provisional becomes a located incident: its other detections go on as an incident of their own."""
        others = [d for i, d in incident.detections.items() if i not in keep]
        if not others:
            return
        rest = self._new_incident(incident.label, now_ns)
        for detection in others:
            del incident.detections[detection.detection_id]
            if (pending := incident.pending.pop(detection.detection_id, None)) is not None:
                pending.incident = rest
                rest.pending[detection.detection_id] = pending
            self._show(rest, detection, now_ns)
        self._finish_if_done(rest, now_ns)

    def _join_shot(self, seed: Pending, now_ns: int) -> bool:
        """A late detection that a located shot of its class predicts joins it.

        Tried only once its own wait is over and no group of pending detections explains it:
        a detection of a new sound at a pole within hearing range of a recent shot fits that
        shot's prediction by chance every few hundred detections under busy traffic.
        """
        arrival = seed.arrival
        # Shots are kept in the order they were located, which is their emission order give or take a
        # wait: scan back until the sound could no longer be reaching poles.
        earliest_ns = arrival.arrival_time_ns - round(self._settings.hearing_range_m * 1.01 / self._c * NS_PER_S)
        stop_ns = earliest_ns - self._wait_ns - self.transit_ns
        for incident, shot in reversed(self._shots):
            origin_ns = shot.group.solution.origin_time_ns or 0
            if origin_ns < stop_ns:
                break
            solution = shot.group.solution
            if incident.label == arrival.label and earliest_ns <= origin_ns <= arrival.arrival_time_ns:
                if any(a.sensor_id == arrival.sensor_id for a in shot.group.arrivals) or not fits(
                    arrival, solution, c=self._c, tolerance_m=self._settings.tolerance_m,
                    hearing_range_m=self._settings.hearing_range_m,
                ):  # fmt: skip
                    continue
                shot.group = dataclasses.replace(shot.group, arrivals=(*shot.group.arrivals, arrival))
                shot.dirty = True
                if now_ns >= shot.settle_ns:
                    self._resolve(incident, shot, now_ns)
                self._move(seed, incident, now_ns)
                return True
        return False

    def _move(self, pending: Pending, target: OpenIncident, now_ns: int) -> None:
        """A pending detection leaves its provisional incident for ``target`` (merged away when emptied)."""
        self._unpend(pending)
        provisional = pending.incident
        provisional.detections.pop(pending.detection.detection_id, None)
        if provisional is not target:
            if not provisional.detections:
                provisional.stage, provisional.merged_into = Stage.MERGED, target.incident_id
                self._touch(provisional, now_ns)
            else:
                self._finish_if_done(provisional, now_ns)
        self._show(target, pending.detection, now_ns)

    def _resolve(self, incident: OpenIncident, shot: Shot, now_ns: int) -> None:
        """Solve a shot again with the detections that joined; one that no longer fits is dropped from the fix."""
        shot.dirty = False
        arrivals = list(shot.group.arrivals)
        while len(arrivals) >= 3:
            solution = self._locate(arrivals)
            if solution.status is not SolveStatus.LOCATED:
                return
            worst = int(np.argmax(np.abs(solution.residuals_m)))
            if abs(solution.residuals_m[worst]) <= self._settings.tolerance_m:
                shot.group = dataclasses.replace(shot.group, arrivals=tuple(arrivals), solution=solution)
                self._touch(incident, now_ns)
                return
            del arrivals[worst]

    def _incident_for_shot(self, group: Group) -> OpenIncident | None:
        """An open located incident of the class this shot is another round of (close in time and space)."""
        solution = group.solution
        merge_ns = self.config.incident_merge_s * NS_PER_S
        if merge_ns <= 0:
            return None
        for incident, shot in reversed(self._shots):
            last = shot.group.solution
            if (last.origin_time_ns or 0) < (solution.origin_time_ns or 0) - merge_ns - self._wait_ns - self.transit_ns:
                break  # shots are in located order: none older can be close in time
            if incident.label != group.label or shot is not incident.shots[-1]:
                continue
            close_in_time = abs((solution.origin_time_ns or 0) - (last.origin_time_ns or 0)) <= merge_ns
            distance_m = float(np.hypot(*np.subtract(solution.position_m[:2], last.position_m[:2])))
            if close_in_time and distance_m <= self.config.incident_merge_m:
                return incident
        return None

    # ----------------------------------------------------------------- bookkeeping

    def _new_incident(self, label: str, now_ns: int) -> OpenIncident:
        return OpenIncident(incident_id=uuid.uuid4().hex, label=label, created_at_ns=now_ns, last_activity_ns=now_ns)

    def _show(self, incident: OpenIncident, detection: wire.Detection, now_ns: int) -> None:
        incident.detections[detection.detection_id] = detection
        self._held[detection.detection_id] = incident
        self._touch(incident, now_ns)

    def _touch(self, incident: OpenIncident, now_ns: int) -> None:
        incident.last_activity_ns = now_ns
        self._changed[incident.incident_id] = incident

    def _unpend(self, pending: Pending) -> None:
        detection_id = pending.detection.detection_id
        if self._pending.pop(detection_id, None) is None:
            return
        same_pole = self._by_pole[(pending.arrival.label, pending.arrival.sensor_id)]
        same_pole.remove(pending)
        if not same_pole:
            del self._by_pole[(pending.arrival.label, pending.arrival.sensor_id)]
        pending.incident.pending.pop(detection_id, None)

    def _finish_if_done(self, incident: OpenIncident, now_ns: int) -> None:
        """A provisional incident nothing located and nothing pending any more: unlocated, final."""
        if incident.stage is Stage.PROVISIONAL and not incident.pending and incident.detections:
            incident.stage = Stage.UNLOCATED
            self._open.append(incident)
            self._touch(incident, now_ns)

    def _add_restored(self, incident: OpenIncident, detection: wire.Detection, now_ns: int) -> None:
        arrival = arrival_of(detection)
        self.note_position(arrival.sensor_id, arrival.position_m, heard_at_ns=now_ns)
        timed = detection.clock_status is not wire.ClockStatus.UNSYNCED
        self._pend(incident, arrival, detection, now_ns, timed=timed)
        incident.detections[detection.detection_id] = detection

    def _pend(
        self, incident: OpenIncident, arrival: Arrival, detection: wire.Detection, received_at_ns: int, *, timed: bool
    ) -> None:
        """The detection waits for its peers (see the module docstring for how long) in ``incident``."""
        deadline_ns = received_at_ns + self._wait_ns + self._reach_cap(self._poles.reach_ns(arrival.sensor_id))
        pending = Pending(arrival, detection, received_at_ns, deadline_ns, incident, timed)
        self._pending[detection.detection_id] = pending
        self._by_pole[(arrival.label, arrival.sensor_id)].append(pending)
        heapq.heappush(self._due, (deadline_ns, next(self._seq), detection.detection_id))
        incident.pending[detection.detection_id] = pending

    def _locate(self, arrivals: Sequence[Arrival]) -> Solution:
        return locate(arrivals, temperature_c=self.temperature_c, wind_m_per_s=self._settings.wind_m_per_s)

    def _reach_cap(self, reach_ns: int) -> int:
        return reach_ns if self._cap_ns is None else min(reach_ns, self._cap_ns)

    def _forget_old(self, now_ns: int) -> None:
        """Incidents quiet for longer than a round could still join them are let go (they are stored)."""
        horizon_ns = int(self.config.incident_merge_s * NS_PER_S) + self._wait_ns + self.transit_ns
        keep = []
        for incident in self._open:
            if now_ns - incident.last_activity_ns <= horizon_ns:
                keep.append(incident)
            else:
                for detection_id in incident.detections:
                    self._held.pop(detection_id, None)
        self._open = keep
        kept = {id(o) for o in keep}
        self._shots = [(o, shot) for o, shot in self._shots if id(o) in kept]


__all__ = ["IncidentBuilder", "arrival_of"]
