"""Which poles can have heard one sound: pole geometry, computed once per pole.

A sound heard by pole ``p`` was made within the hearing range ``R`` of ``p``; any other
pole that heard it stands within ``R`` of the source, so within ``2 R`` of ``p`` — its
*neighbours* — and heard it at most ``|p - q| / c`` earlier or later. Association only
ever looks at detections of a pole's neighbours, and a detection only ever waits for the
farthest of them (:meth:`PoleMap.reach_ns`): the sound's neighbourhood, never the whole
network.

Poles live in a uniform grid of cells ``2 R`` wide, so a new pole meets only the poles of
its own and the eight surrounding cells: noting a pole costs its neighbours, not the
network (2,000 poles are noted in well under a second after a restart), and a pole that
moves or falls silent for ``max_age_s`` leaves every neighbour list it was on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from sed.units import NS_PER_S

Point = tuple[float, float, float]


class PoleMap:
    """Poles heard recently, each with its neighbours within twice the hearing range.

    Parameters
    ----------
    hearing_range_m : float > 0
        Farthest distance at which a pole detects a sound of interest, m.
    speed_m_per_s : float > 0
        Speed of sound, m/s.
    max_age_s : float > 0
        A pole not heard (detection or heartbeat) for this long is forgotten, s.
    """

    def __init__(self, *, hearing_range_m: float, speed_m_per_s: float, max_age_s: float) -> None:
        self.hearing_range_m = hearing_range_m
        self.neighbour_range_m = 2.0 * hearing_range_m
        self._ns_per_m = NS_PER_S / speed_m_per_s
        self._max_age_ns = int(max_age_s * NS_PER_S)
        self._cell_m = self.neighbour_range_m
        self._position: dict[str, Point] = {}
        self._heard_ns: dict[str, int] = {}
        self._cell_of: dict[str, tuple[int, int]] = {}
        self._cells: dict[tuple[int, int], set[str]] = {}
        self._neighbours: dict[str, dict[str, float]] = {}  # pole -> {neighbour: distance m}
        self._reach_m: dict[str, float] = {}
        self._max_reach_m: float | None = 0.0  # None: recompute

    def __len__(self) -> int:
        return len(self._position)

    def __contains__(self, pole_id: object) -> bool:
        return pole_id in self._position

    def note(self, pole_id: str, position_m: Point, *, heard_at_ns: int) -> None:
        """Pole ``pole_id`` spoke from ``position_m`` at ``heard_at_ns``; non-finite positions are ignored."""
        if not all(math.isfinite(v) for v in position_m):
            return
        previous = self._position.get(pole_id)
        self._heard_ns[pole_id] = max(heard_at_ns, self._heard_ns.get(pole_id, heard_at_ns))
        if previous == position_m:
            return
        if previous is not None:
            self._remove(pole_id)
            self._heard_ns[pole_id] = heard_at_ns
        self._insert(pole_id, position_m)

    def age_out(self, now_ns: int) -> list[str]:
        """Forget the poles not heard for ``max_age_s``; returns their ids."""
        stale = [p for p, heard_ns in self._heard_ns.items() if now_ns - heard_ns > self._max_age_ns]
        for pole_id in stale:
            self._remove(pole_id)
        return stale

    def position(self, pole_id: str) -> Point | None:
        return self._position.get(pole_id)

    def neighbours(self, pole_id: str) -> dict[str, float]:
        """The other poles within twice the hearing range: id -> distance, m (empty for an unknown pole)."""
        return self._neighbours.get(pole_id, {})

    def reach_ns(self, pole_id: str) -> int:
        """Longest a sound this pole heard can take to reach another pole that heard it, ns."""
        return round(self._reach_m.get(pole_id, 0.0) * self._ns_per_m)

    def max_reach_ns(self) -> int:
        """The longest :meth:`reach_ns` of any pole (0 without poles), ns."""
        if self._max_reach_m is None:
            self._max_reach_m = max(self._reach_m.values(), default=0.0)
        return round(self._max_reach_m * self._ns_per_m)

    def within(self, point_m: Point, radius_m: float) -> Iterator[tuple[str, Point, float]]:
        """Poles within ``radius_m`` (<= twice the hearing range) of a point: (id, position, distance m)."""
        cx, cy = self._cell(point_m)
        span = max(1, math.ceil(radius_m / self._cell_m))
        for ix in range(cx - span, cx + span + 1):
            for iy in range(cy - span, cy + span + 1):
                for pole_id in self._cells.get((ix, iy), ()):
                    position = self._position[pole_id]
                    distance_m = math.dist(position, point_m)
                    if distance_m <= radius_m:
                        yield pole_id, position, distance_m

    # ----------------------------------------------------------------- internals

    def _cell(self, position_m: Point) -> tuple[int, int]:
        return math.floor(position_m[0] / self._cell_m), math.floor(position_m[1] / self._cell_m)

    def _insert(self, pole_id: str, position_m: Point) -> None:
        mine: dict[str, float] = {}
        for other, _, distance_m in self.within(position_m, self.neighbour_range_m):
            mine[other] = distance_m
            self._neighbours[other][pole_id] = distance_m
            self._reach_m[other] = max(self._reach_m[other], distance_m)
        cell = self._cell(position_m)
        self._position[pole_id] = position_m
        self._cell_of[pole_id] = cell
        self._cells.setdefault(cell, set()).add(pole_id)
        self._neighbours[pole_id] = mine
        self._reach_m[pole_id] = max(mine.values(), default=0.0)
        if self._max_reach_m is not None:
            self._max_reach_m = max(self._max_reach_m, self._reach_m[pole_id])

    def _remove(self, pole_id: str) -> None:
        cell = self._cell_of.pop(pole_id)
        self._cells[cell].discard(pole_id)
        if not self._cells[cell]:
            del self._cells[cell]
        del self._position[pole_id]
        self._heard_ns.pop(pole_id, None)
        self._reach_m.pop(pole_id)
        self._max_reach_m = None
        for other, distance_m in self._neighbours.pop(pole_id).items():
            theirs = self._neighbours[other]
            del theirs[pole_id]
            if distance_m >= self._reach_m[other]:  # it was (one of) the farthest: recompute
                self._reach_m[other] = max(theirs.values(), default=0.0)


__all__ = ["PoleMap"]
