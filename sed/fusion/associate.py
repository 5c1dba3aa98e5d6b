"""Association: which arrivals from different sensors belong to one sound.

A stream of arrivals from many sensors holds direct sounds, echoes (later, by a path that
differs on every sensor), unrelated impulses and several shots seconds apart. Only direct
arrivals of one source are *mutually consistent*: one point and one emission time explain
them all (the "near line-of-sight" pulse selection of ShotSpotter's tech note 098). So:

1. **Hypotheses (RANSAC).** For every pending arrival as a seed, the candidates are the
   arrivals of other sensors of the same class whose time difference is physically
   possible, ``|t_i - t_j| <= |s_i - s_j| / c + 2 tolerance``. The seed and two
   candidates fix x, y and the emission time exactly (up to two solutions of a
   quadratic; all pairs when there are few candidates, a quality-weighted sample
   otherwise). Each solution is scored by its *support*: the summed ``quality`` of the
   best arrival of each sensor within ``c * max_timing_error_s`` of its prediction.
2. **Echo priors.** The direct sound comes first: an arrival that follows a not much
   weaker arrival of its sensor within 0.3 s counts a quarter (in support, and in the
   group size checked against ``min_sensors``); among equal support, hypotheses whose
   members are not so preceded win.
3. **Consensus.** The best-supported hypothesis is refined with
   :func:`~sed.fusion.locate.locate`, its members (per sensor the earliest arrival within
   tolerance) recomputed until stable, then the worst member dropped until every residual
   is within tolerance. It is accepted if big enough, if enough of the live sensors
   around it took part (``min_participation``) and if it is not an echo of an accepted
   group (a mirror image emitting at the same time, or a later consistent set on that
   group's sensors only, smaller or located elsewhere). Accepted arrivals, and repeats of
   them by the same sensor within 2 ms (``Group.duplicates``), leave the pool; the search
   repeats. Shots seconds apart have different emission times: separate groups.

Three arrivals always fit, so groups of three (``min_sensors=3``) are only formed once no
four-sensor group is left, and only when their solution is unambiguous.

``method="likelihood"`` replaces steps 1-3 for small arrays (a handful of sensors per
shot, where a spare equation or two cannot tell right combinations from wrong ones): every
combination is scored by a likelihood ratio that also weighs each arrival's
``directness`` and the sensors that stayed silent, and rounds fired from one place support
each other (:mod:`sed.fusion.likelihood`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sed.errors import ConfigError
from sed.fusion.consensus import Group, Pool, Settings
from sed.fusion.likelihood import LikelihoodModel, SparsePool
from sed.fusion.locate import Arrival
from sed.units import speed_of_sound_m_per_s

METHODS = ("consensus", "likelihood")


def associate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    max_timing_error_s: float = 0.005,
    min_sensors: int = 3,
    source_z_m: float | None = None,
    min_participation: float = 0.0,
    method: str = "consensus",
    likelihood: LikelihoodModel | None = None,
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
    min_participation : float in [0, 1]
        Negative evidence: of the sensors that reported anything within 5 s and lie no
        farther from the solution than its farthest member (+10 %), at least this fraction
        must be members. A real shot is heard by most sensors around it; a chance
        alignment of echoes is not. 0 (default) switches the check off. Consensus only
        (the likelihood method charges every silent live sensor within reach instead).
    method : {"consensus", "likelihood"}
        ``"consensus"`` (default): largest consistent groups first, for dense arrays.
        ``"likelihood"``: likelihood search with selection by source; best where a
        shot reaches only a few sensors, and needs ``Arrival.directness`` to be useful
        (without it, a group needs five fitting sensors to reach the default minimum
        score). All sensor triples up to 80, a fixed random sample of them beyond; cost
        grows with the cube of arrivals per sensor within a baseline's travel time.
    likelihood : LikelihoodModel, optional
        Parameters of the likelihood method (default :class:`LikelihoodModel()`).

    Returns
    -------
    groups : list of Group
        Located groups, by emission time.
    leftover : list of Arrival
        Arrivals no group explains (echoes, unrelated pulses, too few sensors), by time.
    """
    if min_sensors < 3:
        raise ConfigError(f"associate: min_sensors={min_sensors}; expected >= 3")
    if not 0.0 <= min_participation <= 1.0:
        raise ConfigError(f"associate: min_participation={min_participation}; expected in [0, 1]")
    if method not in METHODS:
        raise ConfigError(f"associate: method={method!r}; expected one of {METHODS}")
    settings = Settings(
        tolerance_m=speed_of_sound_m_per_s(temperature_c) * max_timing_error_s,
        min_sensors=min_sensors,
        min_participation=min_participation,
    )
    groups: list[Group] = []
    leftover: list[Arrival] = []
    for label in sorted({a.label for a in arrivals}):
        same = [a for a in arrivals if a.label == label]
        if method == "likelihood":
            found, rest = SparsePool(
                same, temperature_c=temperature_c, source_z_m=source_z_m, tolerance_s=max_timing_error_s,
                min_sensors=min_sensors, model=likelihood or LikelihoodModel(),
            ).associate()  # fmt: skip
        else:
            found, rest = Pool(same, temperature_c, source_z_m, settings).associate()
        groups += found
        leftover += rest
    groups.sort(key=lambda g: g.solution.origin_time_ns or 0)
    leftover.sort(key=lambda a: a.arrival_time_ns)
    return groups, leftover


__all__ = ["METHODS", "Group", "LikelihoodModel", "associate"]
