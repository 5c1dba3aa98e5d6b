"""Association: which arrivals from different sensors belong to one sound.

A stream of arrivals from many sensors holds direct sounds, echoes (later, by a path that
differs on every sensor), unrelated impulses and several shots seconds apart. Only direct
arrivals of one source are *mutually consistent*: one point and one emission time explain
them all (the "near line-of-sight" pulse selection of ShotSpotter's tech note 098). So:

1. **Hypotheses (RANSAC).** For every pending arrival as a seed, the candidates are the
   arrivals of other sensors of the same class whose time difference is physically
   possible, ``|t_i - t_j| <= |s_i - s_j| / c + 2 tolerance``. Sets of the seed and three
   candidates (four sensors fix x, y and the emission time linearly; the earliest
   candidate of each sensor is drawn most often, since echoes come later) are solved in
   one batched linear solve; each solution is scored by how many sensors have an arrival
   within ``c * max_timing_error_s`` of its prediction (MSAC tie-break).
2. **Consensus.** The best hypothesis over all seeds is refined with
   :func:`~sed.fusion.locate.locate`, its inliers (at most one arrival per sensor, the best
   fitting) recomputed until stable, then the worst member dropped until every residual
   is within tolerance. A group with ``min_sensors`` or more becomes a located sound; its
   arrivals leave the pool and the search repeats. Shots seconds apart have different
   emission times, so they come out as separate groups.

With three sensors a group cannot be checked (three arrivals always fit), so triples are
only formed when no four-sensor hypothesis is left and ``min_sensors`` allows it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from sed.fusion.locate import NS_PER_S, Arrival, Solution, SolveStatus, locate, speed_of_sound_m_per_s

#: Hypotheses drawn per seed when the candidates allow more.
_HYPOTHESES_PER_SEED = 48
#: Refinement rounds of a consensus group.
_CONSENSUS_ROUNDS = 4


@dataclasses.dataclass(frozen=True, kw_only=True)
class Group:
    """Arrivals explained by one source, with the solution that explains them."""

    label: str
    arrivals: tuple[Arrival, ...]
    solution: Solution


def associate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    max_timing_error_s: float = 0.005,
    min_sensors: int = 3,
    source_z_m: float | None = None,
) -> tuple[list[Group], list[Arrival]]:
    """Partition arrivals into groups that one source explains.

    Parameters
    ----------
    arrivals : sequence of Arrival
        Any sensors, classes and times (a sensor may report several arrivals).
    temperature_c : float
    max_timing_error_s : float > 0
        Worst plausible error of one arrival time (picking, clock, the path bending round
        a building), s: an arrival is a member when its residual is within
        ``c * max_timing_error_s``.
    min_sensors : int >= 3
        Smallest group that is reported.
    source_z_m : float, optional
        Passed to :func:`~sed.fusion.locate.locate`.

    Returns
    -------
    groups : list of Group
        Located groups, by emission time.
    leftover : list of Arrival
        Arrivals no group explains (echoes, unrelated pulses, too few sensors), by time.
    """
    if min_sensors < 3:
        raise ValueError(f"associate: min_sensors={min_sensors}; expected >= 3")
    groups: list[Group] = []
    leftover: list[Arrival] = []
    for label in sorted({a.label for a in arrivals}):
        pool = _Pool([a for a in arrivals if a.label == label], temperature_c, source_z_m)
        found, rest = pool.associate(max_timing_error_s, min_sensors)
        groups += found
        leftover += rest
    groups.sort(key=lambda g: g.solution.origin_time_ns or 0)
    leftover.sort(key=lambda a: a.arrival_time_ns)
    return groups, leftover


class _Pool:
    """Arrivals of one class as arrays, with the consensus search over them."""

    def __init__(self, arrivals: list[Arrival], temperature_c: float, source_z_m: float | None) -> None:
        self.arrivals = sorted(arrivals, key=lambda a: a.arrival_time_ns)
        self.temperature_c = temperature_c
        self.source_z_m = source_z_m
        self.c = speed_of_sound_m_per_s(temperature_c)
        n = len(self.arrivals)
        positions = np.array([a.position_m for a in self.arrivals], dtype=np.float64).reshape(n, 3)
        self.origin = positions.mean(axis=0) if n else np.zeros(3)
        self.local = positions - self.origin
        self.reference_ns = self.arrivals[0].arrival_time_ns if n else 0
        self.ranges_m = np.array([(a.arrival_time_ns - self.reference_ns) / NS_PER_S * self.c for a in self.arrivals])
        names = sorted({a.sensor_id for a in self.arrivals})
        self.sensor = np.array([names.index(a.sensor_id) for a in self.arrivals], dtype=np.int64)
        self.pending = np.ones(n, dtype=bool)
        self.height = (
            np.zeros(n) if source_z_m is None else (source_z_m - self.origin[2] - self.local[:, 2]) ** 2
        )
        self.rng = np.random.default_rng(0)

    def associate(self, max_timing_error_s: float, min_sensors: int) -> tuple[list[Group], list[Arrival]]:
        tolerance_m = self.c * max_timing_error_s
        groups: list[Group] = []
        exhausted = np.zeros(len(self.arrivals), dtype=bool)
        while True:
            seeds = np.flatnonzero(self.pending & ~exhausted)
            best = self._best_hypothesis(seeds, tolerance_m, size=4)
            if best is None and min_sensors <= 3:
                best = self._best_hypothesis(seeds, tolerance_m, size=3)
            if best is None:
                break
            seed, members = best
            group = self._consensus(members, tolerance_m, min_sensors)
            if group is None:
                exhausted[seed] = True
                continue
            indices, solution = group
            self.pending[indices] = False
            label = self.arrivals[0].label
            groups.append(
                Group(label=label, arrivals=tuple(self.arrivals[i] for i in indices), solution=solution)
            )
        return groups, [a for a, p in zip(self.arrivals, self.pending, strict=True) if p]

    def _candidates(self, seed: int, tolerance_m: float) -> np.ndarray:
        baseline_m = np.hypot(*(self.local[:, :2] - self.local[seed, :2]).T)
        possible = np.abs(self.ranges_m - self.ranges_m[seed]) <= baseline_m + 2.0 * tolerance_m
        return np.flatnonzero(possible & self.pending & (self.sensor != self.sensor[seed]))

    def _best_hypothesis(
        self, seeds: np.ndarray, tolerance_m: float, *, size: int
    ) -> tuple[int, np.ndarray] | None:
        best: tuple[int, float, int, np.ndarray] | None = None  # (count, -msac, seed, members)
        for seed in seeds:
            candidates = self._candidates(int(seed), tolerance_m)
            if len(np.unique(self.sensor[candidates])) < size - 1:
                continue
            sets = self._draw(int(seed), candidates, size)
            if sets.size == 0:
                continue
            scored = self._score(sets, np.append(candidates, seed), tolerance_m)
            if scored is None:
                continue
            count, msac, members = scored
            if best is None or (count, -msac) > (best[0], best[1]):
                best = (count, -msac, int(seed), members)
        if best is None or best[0] < size:
            return None
        return best[2], best[3]

    def _draw(self, seed: int, candidates: np.ndarray, size: int) -> np.ndarray:
        """Index sets (seed + size-1 candidates of distinct sensors), shape (h, size)."""
        sensors = self.sensor[candidates]
        # Within each sensor, earlier arrivals are likelier direct: weight 1 / (rank + 1).
        ranks = np.zeros(len(candidates))
        for s in np.unique(sensors):
            at = np.flatnonzero(sensors == s)
            ranks[at] = np.arange(len(at))
        weights = 1.0 / (ranks + 1.0)
        k = size - 1
        if len(candidates) <= 12:
            combos = np.array(list(itertools.combinations(range(len(candidates)), k)), dtype=np.int64)
        else:
            p = weights / weights.sum()
            draws = [self.rng.choice(len(candidates), size=k, replace=False, p=p) for _ in range(_HYPOTHESES_PER_SEED)]
            combos = np.array(draws, dtype=np.int64)
        distinct = np.array([len(set(sensors[c])) == k for c in combos], dtype=bool)
        combos = combos[distinct]
        return np.column_stack([np.full(len(combos), seed), candidates[combos]]) if len(combos) else np.zeros(0)

    def _score(
        self, sets: np.ndarray, pool: np.ndarray, tolerance_m: float
    ) -> tuple[int, float, np.ndarray] | None:
        solutions = self._solve_sets(sets)
        if solutions is None:
            return None
        # Residuals of every pool arrival under every hypothesis, shape (h, m).
        dx = solutions[:, None, 0] - self.local[pool, 0]
        dy = solutions[:, None, 1] - self.local[pool, 1]
        distance = np.sqrt(dx**2 + dy**2 + self.height[pool])
        residual = np.nan_to_num((self.ranges_m[pool] - solutions[:, None, 2]) - distance, nan=np.inf)
        order = np.argsort(self.sensor[pool], kind="stable")
        sensors = self.sensor[pool][order]
        starts = np.flatnonzero(np.r_[True, sensors[1:] != sensors[:-1]])
        capped = np.minimum(residual[:, order] ** 2, tolerance_m**2)
        best_per_sensor = np.minimum.reduceat(capped, starts, axis=1)
        counts = (best_per_sensor < tolerance_m**2).sum(axis=1)
        msac = best_per_sensor.sum(axis=1)
        h = int(np.lexsort((msac, -counts))[0])
        inlier = np.abs(residual[h]) <= tolerance_m
        members = _best_per_sensor(pool[inlier], np.abs(residual[h][inlier]), self.sensor)
        return int(counts[h]), float(msac[h]), members

    def _solve_sets(self, sets: np.ndarray) -> np.ndarray | None:
        """Linear (x, y, tau) for each index set: 4 rows exactly, 3 rows via the quadratic."""
        xy = self.local[sets][..., :2]
        ranges = self.ranges_m[sets]
        rhs = ranges**2 - (xy**2).sum(axis=-1) - self.height[sets]
        if sets.shape[1] == 4:
            design = np.concatenate([-2.0 * xy, 2.0 * ranges[..., None], np.ones(ranges.shape + (1,))], axis=-1)
            ok = np.abs(np.linalg.det(design)) > 1e-6 * np.abs(design).max(axis=(1, 2)) ** 3
            if not ok.any():
                return None
            solutions = np.full((len(sets), 3), np.nan)
            solutions[ok] = np.linalg.solve(design[ok], rhs[ok][..., None])[..., :3, 0]
        else:
            solutions = np.full((len(sets), 3), np.nan)
            for h, members in enumerate(sets):
                arrivals = [self.arrivals[i] for i in members]
                solution = locate(arrivals, temperature_c=self.temperature_c, source_z_m=self.source_z_m)
                if solution.status is SolveStatus.LOCATED and solution.position_m is not None:
                    tau = self.c * (solution.origin_time_ns - self.reference_ns) / NS_PER_S  # type: ignore[operator]
                    solutions[h] = [*(np.array(solution.position_m[:2]) - self.origin[:2]), tau]
        causal = solutions[:, 2] <= ranges.min(axis=1) + 1e-6
        solutions[~causal] = np.nan
        return solutions if np.isfinite(solutions).any() else None

    def _consensus(
        self, members: np.ndarray, tolerance_m: float, min_sensors: int
    ) -> tuple[np.ndarray, Solution] | None:
        previous: set[int] = set()
        solution = None
        for _ in range(_CONSENSUS_ROUNDS):
            if len(members) < min_sensors:
                return None
            solution = self._locate(members)
            if solution.status is not SolveStatus.LOCATED:
                return None
            if set(members.tolist()) == previous:
                break
            previous = set(members.tolist())
            members = self._inliers(solution, tolerance_m)
        # Drop the worst member until the solution explains every one.
        while len(members) >= min_sensors:
            solution = self._locate(members)
            if solution.status is not SolveStatus.LOCATED:
                return None
            worst = int(np.argmax(np.abs(solution.residuals_m)))
            if abs(solution.residuals_m[worst]) <= tolerance_m:
                return members, solution
            members = np.delete(members, worst)
        return None

    def _locate(self, members: np.ndarray) -> Solution:
        return locate(
            [self.arrivals[i] for i in members], temperature_c=self.temperature_c, source_z_m=self.source_z_m
        )

    def _inliers(self, solution: Solution, tolerance_m: float) -> np.ndarray:
        assert solution.position_m is not None and solution.origin_time_ns is not None
        p = np.array(solution.position_m) - self.origin
        tau = self.c * (solution.origin_time_ns - self.reference_ns) / NS_PER_S
        pool = np.flatnonzero(self.pending)
        distance = np.sqrt(((self.local[pool, :2] - p[:2]) ** 2).sum(axis=1) + self.height[pool])
        residual = np.abs((self.ranges_m[pool] - tau) - distance)
        inlier = residual <= tolerance_m
        return _best_per_sensor(pool[inlier], residual[inlier], self.sensor)


def _best_per_sensor(indices: np.ndarray, abs_residual: np.ndarray, sensor: np.ndarray) -> np.ndarray:
    """Of several arrivals per sensor keep the one with the smallest residual; sorted indices."""
    if indices.size == 0:
        return indices
    order = np.lexsort((abs_residual, sensor[indices]))
    chosen = indices[order]
    keep = np.r_[True, sensor[chosen][1:] != sensor[chosen][:-1]]
    return np.sort(chosen[keep])


__all__ = ["Group", "associate"]
