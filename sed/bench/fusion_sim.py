"""A city with ground truth for the fusion node's load benchmark: poles, sources, detections.

:func:`simulate` lays ``n_poles`` poles on a square grid (``spacing_m`` apart, 4 m high,
the site frame centred on the grid's centre) and fires sources at random times (a Poisson
process of ``sources_per_min``) at uniform random places over the grid's bounding box,
1.5 m above ground. Every pole within ``hearing_radius_m`` of a source hears it at the
emission time plus the travel time at the speed of sound, plus a Gaussian pick error
(:data:`PICK_SIGMA_S`); its detection reaches the fusion node a uniform
:data:`DETECTOR_DELAY_S` later (the detector's delay, measured from when the sound reached
the pole). On top, ``spurious_fraction`` as many again spurious detections at random poles
and times. Classes follow :data:`LABEL_MIX` for sources and spurious detections alike.

The detections are real :class:`sed.wire.Detection` messages, so the same scenario can be
fed to the incident builder in process (:mod:`sed.bench.fusion_drive`) or sent over CURVE
to a real node (:mod:`sed.bench.fusion_e2e`). The ground truth (which source each
detection belongs to) stays beside the messages, in :attr:`Scenario.source_of`.

>>> s = simulate(n_poles=50, sources_per_min=10, duration_s=60, seed=1)
>>> len(s.poles), all(a.received_at_ns <= b.received_at_ns for a, b in zip(s.heard, s.heard[1:]))
(50, True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence

import numpy as np

from sed import wire
from sed.bench.city_fusion import Heard
from sed.errors import SedError
from sed.units import NS_PER_S, speed_of_sound_m_per_s

#: UTC of the scenario's start: a fixed time (a minute before New Year), so runs are reproducible.
START_NS = int(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp()) * NS_PER_S
#: Height of the microphones and of the sources above ground, m.
POLE_HEIGHT_M, SOURCE_HEIGHT_M = 4.0, 1.5
#: 1-sigma error of a picked onset, s (also the detections' ``arrival_uncertainty_ns``).
PICK_SIGMA_S = 0.001
#: A detection reaches the node this long after the sound reached its pole (uniform), s.
DETECTOR_DELAY_S = (0.8, 1.1)
#: Share of each class among sources and spurious detections.
LABEL_MIX: Mapping[wire.Label, float] = {
    wire.Label.GUNSHOT: 0.7,
    wire.Label.SCREAM: 0.15,
    wire.Label.GLASS_BREAK: 0.15,
}
#: How long each class sounds, ms (the detections' ``duration_ms``).
DURATION_MS: Mapping[wire.Label, float] = {
    wire.Label.GUNSHOT: 300.0,
    wire.Label.SCREAM: 1200.0,
    wire.Label.GLASS_BREAK: 600.0,
}
#: ``model_version`` of every simulated detection.
MODEL_VERSION = "fusion-sim-1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    """One sound: where and when it was made, and the poles that heard it."""

    source_id: int
    label: wire.Label
    position_m: tuple[float, float, float]
    emission_ns: int
    heard_by: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scenario:
    """A simulated city's poles, sources and detections in the order they reach the node.

    ``source_of`` maps each detection id to the :attr:`Source.source_id` it belongs to, or
    ``None`` for a spurious detection. ``start_ns`` is the first source's earliest
    possible emission; ``settings`` the arguments of :func:`simulate`, for reports.
    """

    poles: dict[str, tuple[float, float, float]]
    sources: list[Source]
    heard: list[Heard]
    source_of: dict[str, int | None]
    start_ns: int
    duration_s: float
    temperature_c: float
    settings: dict[str, float | int]

    @property
    def radius_m(self) -> float:
        """The farthest pole's horizontal distance from the site origin, m."""
        return max((math.hypot(x, y) for x, y, _ in self.poles.values()), default=0.0)

    def detections_of(self, source_id: int) -> list[Heard]:
        """The detections of one source, in the order they reach the node."""
        return [h for h in self.heard if self.source_of[h.detection.detection_id] == source_id]


def grid_positions(n_poles: int, *, spacing_m: float) -> np.ndarray:
    """Poles on a square grid, row by row (the last row may be partial), centred on the origin.

    Returns
    -------
    np.ndarray [shape=(n_poles, 3), dtype=float64], m (east, north, up)
    """
    n_cols = math.ceil(math.sqrt(n_poles))
    k = np.arange(n_poles)
    xy = np.stack([k % n_cols, k // n_cols], axis=1).astype(np.float64) * spacing_m
    xy -= (xy.max(axis=0) + xy.min(axis=0)) / 2
    return np.column_stack([xy, np.full(n_poles, POLE_HEIGHT_M)])


def pole_id(index: int) -> str:
    """The sensor id of the pole at ``index`` on the grid."""
    return f"pole-{index:04d}"


def simulate(
    *,
    n_poles: int,
    sources_per_min: float,
    duration_s: float,
    seed: int,
    hearing_radius_m: float = 400.0,
    spacing_m: float = 250.0,
    spurious_fraction: float = 0.1,
    temperature_c: float = 15.0,
) -> Scenario:
    """A seeded city: see the module docstring.

    Parameters
    ----------
    n_poles : int >= 1
    sources_per_min : float >= 0
        Mean rate of the Poisson process of sources.
    duration_s : float > 0
        Sources are emitted during ``[0, duration_s)`` after :data:`START_NS`.
    seed : int
    hearing_radius_m, spacing_m : float > 0, m
    spurious_fraction : float >= 0
        Spurious detections, as a fraction of the sources' detections.
    temperature_c : float
        Sets the speed of sound.

    Raises
    ------
    SedError
        Naming the argument and the value, when one is out of range.
    """
    for name, value, ok in (
        ("n_poles", n_poles, n_poles >= 1),
        ("sources_per_min", sources_per_min, sources_per_min >= 0),
        ("duration_s", duration_s, duration_s > 0),
        ("hearing_radius_m", hearing_radius_m, hearing_radius_m > 0),
        ("spacing_m", spacing_m, spacing_m > 0),
        ("spurious_fraction", spurious_fraction, spurious_fraction >= 0),
    ):
        if not (ok and math.isfinite(value)):
            raise SedError(f"simulate: {name} = {value!r}; expected a finite number in range")
    rng = np.random.default_rng(seed)
    positions = grid_positions(n_poles, spacing_m=spacing_m)
    labels = list(LABEL_MIX)
    label_p = np.array([LABEL_MIX[label] for label in labels])
    # A Poisson process over the window: a Poisson count of sources at uniform times.
    n_sources = int(rng.poisson(sources_per_min * duration_s / 60))
    times_s = np.sort(rng.uniform(0.0, duration_s, size=n_sources))
    low, high = positions[:, :2].min(axis=0), positions[:, :2].max(axis=0)
    xy = rng.uniform(low, high, size=(n_sources, 2))
    source_labels = rng.choice(len(labels), size=n_sources, p=label_p)
    placed = [
        (labels[source_labels[s]], (float(xy[s, 0]), float(xy[s, 1])), float(times_s[s])) for s in range(n_sources)
    ]
    scenario = scenario_of(
        positions,
        placed,
        duration_s=duration_s,
        rng=rng,
        hearing_radius_m=hearing_radius_m,
        spurious_fraction=spurious_fraction,
        temperature_c=temperature_c,
    )
    scenario.settings.update(n_poles=n_poles, sources_per_min=sources_per_min, seed=seed, spacing_m=spacing_m)
    return scenario


def scenario_of(
    pole_positions_m: np.ndarray,
    placed: Sequence[tuple[wire.Label, tuple[float, float], float]],
    *,
    duration_s: float,
    rng: np.random.Generator,
    hearing_radius_m: float = 400.0,
    spurious_fraction: float = 0.1,
    temperature_c: float = 15.0,
) -> Scenario:
    """The detections of given sources at given poles (the physics of :func:`simulate`).

    Parameters
    ----------
    pole_positions_m : np.ndarray [shape=(n_poles, 3)], m
        Named :func:`pole_id` of their row.
    placed : sequence of (label, (x_m, y_m), emission_s)
        Each source's class, horizontal position and emission time after :data:`START_NS`.
    duration_s : float > 0
        Spurious detections fall within ``[0, duration_s)`` after :data:`START_NS`.
    rng : np.random.Generator
        Draws the pick errors, the detector delays, the scores and the spurious detections.
    """
    positions = np.asarray(pole_positions_m, dtype=np.float64).reshape(-1, 3)
    poles = {pole_id(k): (float(x), float(y), float(z)) for k, (x, y, z) in enumerate(positions)}
    pole_ids = list(poles)
    labels = list(LABEL_MIX)
    label_p = np.array([LABEL_MIX[label] for label in labels])
    c_m_per_s = speed_of_sound_m_per_s(temperature_c)
    sources: list[Source] = []
    heard: list[Heard] = []
    source_of: dict[str, int | None] = {}
    for s, (label, (x_m, y_m), emission_s) in enumerate(placed):
        position_m = (float(x_m), float(y_m), SOURCE_HEIGHT_M)
        emission_ns = START_NS + round(emission_s * NS_PER_S)
        horizontal_m = np.hypot(positions[:, 0] - x_m, positions[:, 1] - y_m)
        near = np.flatnonzero(horizontal_m <= hearing_radius_m)
        distance_m = np.linalg.norm(positions[near] - np.asarray(position_m), axis=1)
        reached_ns = emission_ns + np.round(distance_m / c_m_per_s * NS_PER_S).astype(np.int64)
        picked_ns = reached_ns + np.round(rng.normal(0.0, PICK_SIGMA_S, size=len(near)) * NS_PER_S).astype(np.int64)
        delay_ns = np.round(rng.uniform(*DETECTOR_DELAY_S, size=len(near)) * NS_PER_S).astype(np.int64)
        for j, k in enumerate(near):
            detection = _detection(
                pole_ids[k], poles[pole_ids[k]], label, int(picked_ns[j]), distance_m=float(distance_m[j]), rng=rng
            )
            heard.append(Heard(detection=detection, received_at_ns=int(reached_ns[j] + delay_ns[j])))
            source_of[detection.detection_id] = s
        sources.append(
            Source(
                source_id=s,
                label=wire.Label(label),
                position_m=position_m,
                emission_ns=emission_ns,
                heard_by=tuple(pole_ids[k] for k in near),
            )
        )

    n_spurious = round(spurious_fraction * len(heard))
    spurious_poles = rng.integers(0, len(pole_ids), size=n_spurious)
    spurious_s = rng.uniform(0.0, duration_s, size=n_spurious)
    spurious_labels = rng.choice(len(labels), size=n_spurious, p=label_p)
    spurious_delay_s = rng.uniform(*DETECTOR_DELAY_S, size=n_spurious)
    spurious = zip(spurious_poles, spurious_s, spurious_labels, spurious_delay_s, strict=True)
    for k, at_s, label_index, delay_s in spurious:
        arrival_ns = START_NS + round(at_s * NS_PER_S)
        sensor_id = pole_ids[k]
        detection = _detection(
            sensor_id, poles[sensor_id], labels[label_index], arrival_ns, distance_m=hearing_radius_m, rng=rng
        )
        if detection.detection_id in source_of:
            continue  # the same pole, class and nanosecond as another detection: vanishingly rare
        heard.append(Heard(detection=detection, received_at_ns=arrival_ns + round(delay_s * NS_PER_S)))
        source_of[detection.detection_id] = None

    heard.sort(key=lambda h: (h.received_at_ns, h.detection.detection_id))
    return Scenario(
        poles=poles,
        sources=sources,
        heard=heard,
        source_of=source_of,
        start_ns=START_NS,
        duration_s=float(duration_s),
        temperature_c=float(temperature_c),
        settings={
            "n_poles": len(poles),
            "n_sources": len(sources),
            "duration_s": duration_s,
            "hearing_radius_m": hearing_radius_m,
            "spurious_fraction": spurious_fraction,
            "temperature_c": temperature_c,
        },
    )


def _detection(
    sensor_id: str,
    position_m: tuple[float, float, float],
    label: wire.Label,
    arrival_time_ns: int,
    *,
    distance_m: float,
    rng: np.random.Generator,
) -> wire.Detection:
    # Louder near the source (spherical spreading from -10 dBFS at 10 m); the score is drawn.
    peak_dbfs = max(-10.0 - 20.0 * math.log10(max(distance_m, 10.0) / 10.0), -120.0)
    return wire.Detection(
        # The shape a pole's pipeline gives its ids (sed.capture.pipeline): unique per pole, onset and class.
        detection_id=f"{sensor_id}:{arrival_time_ns}:{label}",
        sensor_id=sensor_id,
        label=label,
        score=float(rng.uniform(0.6, 1.0)),
        arrival_time_ns=arrival_time_ns,
        arrival_uncertainty_ns=round(PICK_SIGMA_S * NS_PER_S),
        duration_ms=DURATION_MS[label],
        peak_dbfs=peak_dbfs,
        position=wire.Position(x_m=position_m[0], y_m=position_m[1], z_m=position_m[2]),
        clock_status=wire.ClockStatus.SYNCED,
        model_version=MODEL_VERSION,
    )


__all__ = [
    "DETECTOR_DELAY_S",
    "LABEL_MIX",
    "PICK_SIGMA_S",
    "START_NS",
    "Heard",
    "Scenario",
    "Source",
    "grid_positions",
    "pole_id",
    "scenario_of",
    "simulate",
]
