"""Coverage of a set of sites, and the greedy choice of the next ``K`` candidate sites.

A *scenario* is one event class at one time of day (its noise level). For each scenario
and site, :func:`reach` turns the site's paths into P(detect) per cell through the range
model and the detector's measured curve. :class:`Coverage` accumulates sites one at a time
(the count distribution and the p-weighted Fisher information of
:mod:`sed.coverage.locate_error`) and gives per cell P(heard by >= 1), the expected number
of detecting sensors, P(located) = P(N >= 3) x [predicted 95 % error < bound], and the error.

:func:`greedy_add` picks, one at a time, the candidate that most increases the *located
area* of the objective cells (the priority zones, or the whole area), averaged over the
scenarios; each pick's marginal gain is reported. :func:`brute_force_add` tries every
combination (tiny cases only: it is what the greedy choice is tested against).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from sed.coverage.grid import SitePaths
from sed.coverage.locate_error import add_to_count, error_95_m, fisher_increment
from sed.coverage.physics import ClassAcoustics, RangeModel, received_level_db
from sed.models.detection_curve import DetectionCurve

#: Combinations :func:`brute_force_add` tries at most.
MAX_BRUTE_FORCE_COMBINATIONS = 20_000
#: Below the curve's lowest measured SNR, P(detect) falls linearly from the lowest step's value
#: to 0 over this many dB. The curve itself holds its end value (it is measured, not a model);
#: held out to any distance, a floor of a few per cent would let every far sensor "detect"
#: everywhere. Tapering errs toward too little coverage where nothing was measured.
BELOW_CURVE_TAPER_DB = 10.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scenario:
    """One event class at one time of day."""

    label: str
    period: str  # "day" | "night"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reach:
    """Where one site detects one scenario's events, with what probability.

    Attributes
    ----------
    site_xy_m : np.ndarray [shape=(2,)], m
    cells : np.ndarray [shape=(n,), dtype=int64]
        Planning cells with P(detect) >= the planner's floor.
    p : np.ndarray [shape=(n,), dtype=float64] in [0, 1]
    """

    site_xy_m: np.ndarray
    cells: np.ndarray
    p: np.ndarray


def reach(
    *,
    paths: SitePaths,
    site_xy_m: np.ndarray,
    acoustics: ClassAcoustics,
    model: RangeModel,
    noise_db: np.ndarray,
    curve: DetectionCurve,
    min_p_detect: float,
) -> Reach:
    """P(detect) at every cell a site's paths reach, for one class and noise map.

    Parameters
    ----------
    paths : SitePaths
    site_xy_m : np.ndarray [shape=(2,)], m
    acoustics : ClassAcoustics
    model : RangeModel
    noise_db : np.ndarray [shape=(n_cells,)]
        Ambient Leq at every planning cell, dB re 20 µPa.
    curve : DetectionCurve
    min_p_detect : float in [0, 1)
        Cells below this are dropped (negligible: they cannot change the plan).
    """
    level_db = received_level_db(
        source_level_db=acoustics.source_level_db,
        distance_m=paths.distance_m,
        frequency_hz=acoustics.frequency_hz,
        path_difference_m=paths.path_difference_m,
        model=model,
    )
    p = detect_probability(curve=curve, label=acoustics.label, snr_db=level_db - noise_db[paths.cells])
    keep = p >= min_p_detect
    return Reach(site_xy_m=np.asarray(site_xy_m, dtype=np.float64), cells=paths.cells[keep], p=p[keep])


def detect_probability(*, curve: DetectionCurve, label: str, snr_db: np.ndarray) -> np.ndarray:
    """The curve's P(detect), tapered to 0 below its lowest step (:data:`BELOW_CURVE_TAPER_DB`).

    Parameters
    ----------
    curve : DetectionCurve
    label : str
    snr_db : np.ndarray [shape=(...)], dB

    Returns
    -------
    np.ndarray [shape=snr_db.shape, dtype=float64] in [0, 1]
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    p = curve.probability(label=label, snr_db=snr)
    lowest_db = float(curve.snr_db[0])
    taper = np.clip((snr - (lowest_db - BELOW_CURVE_TAPER_DB)) / BELOW_CURVE_TAPER_DB, 0.0, 1.0)
    return np.where(snr < lowest_db, p * taper, p)


class Coverage:
    """One scenario's coverage by a growing set of sites, per planning cell.

    Parameters
    ----------
    cell_xy_m : np.ndarray [shape=(n_cells, 2)], m
    timing_sigma_s : float > 0
        1-sigma arrival-time error of a sensor, s.
    error_bound_m : float > 0
        A cell counts as located where the predicted 95 % error is below this, m.
    """

    def __init__(self, *, cell_xy_m: np.ndarray, timing_sigma_s: float, error_bound_m: float) -> None:
        n = len(cell_xy_m)
        self.cell_xy_m = cell_xy_m
        self.timing_sigma_s = timing_sigma_s
        self.error_bound_m = error_bound_m
        self.count = np.zeros((n, 3))
        self.count[:, 0] = 1.0
        self.fisher = np.zeros((n, 3, 3))
        self.expected_sensors = np.zeros(n)
        self._p_located = np.zeros(n)

    def copy(self) -> Coverage:
        """An independent copy (the cells' positions are shared: they never change)."""
        new = Coverage(cell_xy_m=self.cell_xy_m, timing_sigma_s=self.timing_sigma_s, error_bound_m=self.error_bound_m)
        new.count, new.fisher, new.expected_sensors = (
            self.count.copy(),
            self.fisher.copy(),
            self.expected_sensors.copy(),
        )
        new._p_located = self._p_located.copy()
        return new

    def add(self, site: Reach) -> None:
        """Add one site's detections (in place)."""
        cells = site.cells
        self.count[cells] = add_to_count(dist=self.count[cells], p=site.p)
        self.fisher[cells] += self._increment(site)
        self.expected_sensors[cells] += site.p
        self._p_located[cells] = _located(self.count[cells], self.fisher[cells], self.error_bound_m)

    def gain(self, site: Reach, *, weight: np.ndarray) -> float:
        """Increase of ``sum(weight * P(located))`` if ``site`` were added (no change made).

        Parameters
        ----------
        site : Reach
        weight : np.ndarray [shape=(n_cells,)]
            What a located cell is worth (its area in the objective zones, m^2; 0 outside).
        """
        site = restrict(site, weight=weight)
        cells = site.cells
        if cells.size == 0:
            return 0.0
        count = add_to_count(dist=self.count[cells], p=site.p)
        after = _located(count, self.fisher[cells] + self._increment(site), self.error_bound_m)
        return float(np.sum(weight[cells] * (after - self._p_located[cells])))

    @property
    def p_heard(self) -> np.ndarray:
        """P(at least one sensor detects) [shape=(n_cells,)]."""
        return 1.0 - self.count[:, 0]

    @property
    def error_95_m(self) -> np.ndarray:
        """Predicted 95 % horizontal error, m; inf where unobservable [shape=(n_cells,)]."""
        return error_95_m(fisher=self.fisher)

    @property
    def p_three(self) -> np.ndarray:
        """P(at least three sensors detect) [shape=(n_cells,)]."""
        return np.clip(1.0 - self.count.sum(axis=1), 0.0, 1.0)

    @property
    def p_located(self) -> np.ndarray:
        """P(N >= 3) where the predicted error is under the bound, else 0 [shape=(n_cells,)]."""
        return self._p_located.copy()

    def _increment(self, site: Reach) -> np.ndarray:
        return fisher_increment(
            cell_xy_m=self.cell_xy_m[site.cells],
            sensor_xy_m=site.site_xy_m,
            p=site.p,
            timing_sigma_s=self.timing_sigma_s,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pick:
    """One greedy choice.

    Attributes
    ----------
    candidate : int
        Index into the candidates passed to :func:`greedy_add`.
    gain_m2 : float
        Increase of the located area of the objective cells, averaged over scenarios, m^2.
    located_m2 : float
        The located area after this pick, m^2.
    """

    candidate: int
    gain_m2: float
    located_m2: float


def located_area_m2(coverages: Sequence[Coverage], *, weight: np.ndarray) -> float:
    """``sum(weight * P(located))`` averaged over scenarios, m^2."""
    return float(np.mean([np.sum(weight * c.p_located) for c in coverages]))


def greedy_add(
    *,
    coverages: Sequence[Coverage],
    candidates: Sequence[Sequence[Reach]],
    weight: np.ndarray,
    k: int,
    on_pick: Callable[[Pick], None] | None = None,
) -> list[Pick]:
    """Pick ``k`` candidates one at a time, each the largest marginal gain.

    Parameters
    ----------
    coverages : sequence of Coverage, one per scenario
        The existing network's coverage; updated in place with each pick.
    candidates : sequence (n_candidates) of sequences (n_scenarios) of Reach
    weight : np.ndarray [shape=(n_cells,)], m^2 per located cell (0 outside the objective)
    k : int >= 0
        Stops early when the candidates run out.
    on_pick : callable, optional
        Called with each :class:`Pick` as it is made (progress output).

    Returns
    -------
    list[Pick]
        In the order picked. Ties go to the earlier candidate.
    """
    # Only cells with weight count: restrict each candidate once. A pick changes the state
    # of its own cells only, so only the gains of candidates sharing cells with it change.
    reaches = [[restrict(r, weight=weight) for r in per_scenario] for per_scenario in candidates]
    gains = np.array([[cov.gain(r, weight=weight) for cov, r in zip(coverages, rs, strict=True)] for rs in reaches])
    gains = gains.reshape(len(candidates), len(coverages))
    remaining = list(range(len(candidates)))
    picks: list[Pick] = []
    total = located_area_m2(coverages, weight=weight)
    changed = np.zeros(len(weight), dtype=bool)
    for _ in range(min(k, len(candidates))):
        best = remaining.pop(int(np.argmax(gains[remaining].mean(axis=1))))
        for j, (cov, site) in enumerate(zip(coverages, candidates[best], strict=True)):
            cov.add(site)
            changed[:] = False
            changed[site.cells] = True
            for c in remaining:
                if changed[reaches[c][j].cells].any():
                    gains[c, j] = cov.gain(reaches[c][j], weight=weight)
        total_after = located_area_m2(coverages, weight=weight)
        picks.append(Pick(candidate=best, gain_m2=total_after - total, located_m2=total_after))
        total = total_after
        if on_pick is not None:
            on_pick(picks[-1])
    return picks


def restrict(site: Reach, *, weight: np.ndarray) -> Reach:
    """``site`` on the cells with positive ``weight`` only."""
    keep = weight[site.cells] > 0
    if keep.all():
        return site
    return Reach(site_xy_m=site.site_xy_m, cells=site.cells[keep], p=site.p[keep])


def brute_force_add(
    *, coverages: Sequence[Coverage], candidates: Sequence[Sequence[Reach]], weight: np.ndarray, k: int
) -> tuple[tuple[int, ...], float]:
    """The ``k`` candidates with the largest located area, trying every combination.

    Returns
    -------
    (tuple of candidate indices, located area m^2)

    Raises
    ------
    ValueError
        More than :data:`MAX_BRUTE_FORCE_COMBINATIONS` combinations.
    """
    n_combinations = math.comb(len(candidates), k)
    if n_combinations > MAX_BRUTE_FORCE_COMBINATIONS:
        raise ValueError(f"{n_combinations} combinations of {k} in {len(candidates)}; at most "
                         f"{MAX_BRUTE_FORCE_COMBINATIONS} are tried")  # fmt: skip
    best: tuple[tuple[int, ...], float] = ((), -math.inf)
    for chosen in itertools.combinations(range(len(candidates)), k):
        trial = [cov.copy() for cov in coverages]
        for c in chosen:
            for cov, site in zip(trial, candidates[c], strict=True):
                cov.add(site)
        value = located_area_m2(trial, weight=weight)
        if value > best[1]:
            best = (chosen, value)
    return best


def _located(count: np.ndarray, fisher: np.ndarray, error_bound_m: float) -> np.ndarray:
    p_three = np.clip(1.0 - count.sum(axis=1), 0.0, 1.0)
    return np.where(error_95_m(fisher=fisher) < error_bound_m, p_three, 0.0)


__all__ = [
    "Coverage",
    "Pick",
    "Reach",
    "Scenario",
    "brute_force_add",
    "detect_probability",
    "greedy_add",
    "located_area_m2",
    "reach",
    "restrict",
]
