"""A simulated city for the false-alarm benchmark: poles, real background audio, scripted events.

``N`` poles stand on a jittered grid (:data:`POLE_SPACING_M` apart, ±:data:`POLE_JITTER_M`).
Each pole's own surroundings play the ``dev``-split negatives of the shared data one after
another (its own random order, a random gain in :data:`BACKGROUND_GAIN_DB`, a short gap
between clips), from a source a few metres away: the clip *as recorded* is what that pole
hears. The same sound also reaches every other pole within :data:`HEARING_RADIUS_M`, later
by the extra distance over the speed of sound (:func:`~sed.fusion.locate.speed_of_sound_m_per_s`)
and quieter by spherical spreading (amplitude ∝ 1 / distance, as :mod:`sed.capture.scene`
renders): one truck horn is heard by several poles, which is what defeats corroboration
in a real city. Scripted events (dev-split positives picked as :func:`sed.capture.scene.pick_sound`
does, peak level :data:`EVENT_LEVEL_DB` at :data:`~sed.capture.scene.REFERENCE_DISTANCE_M`)
happen about every :data:`EVENT_INTERVAL_S` at random points inside the grid and are
rendered the same way at every pole within :data:`EVENT_RANGE_M`.

Delays are rounded to whole samples (at most 31 µs, 1 cm of sound travel: far below the
arrival picker's uncertainty); there are no echoes and no air absorption. A contribution
whose peak at a pole would be below :data:`INAUDIBLE_DBFS` is not rendered. Every pole adds
low-pass (traffic-like) noise at :data:`NOISE_DBFS`, and its converter saturates at full
scale, as a real microphone's does.

Use::

    city = build_city(events_dir=data / "events", n_poles=24, duration_s=3600.0, seed=0)
    renderer = CityRenderer(city)
    block = renderer.render(16000)  # (n_poles, 16000) float32, the next second of every pole
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.signal

from sed import wire
from sed.capture.scene import MIN_DISTANCE_M, NOISE_POLE, REFERENCE_DISTANCE_M, pick_sound, sound_source
from sed.config import SceneEvent
from sed.errors import ConfigError
from sed.models.train.data import load_clips, read_manifest
from sed.units import speed_of_sound_m_per_s

SAMPLE_RATE_HZ = 16000
#: Grid spacing of the poles and the most each is moved from its grid point (each axis), m.
POLE_SPACING_M, POLE_JITTER_M = 150.0, 20.0
#: Microphone height on the pole and source height of every sound, m.
POLE_HEIGHT_M, SOURCE_HEIGHT_M = 6.0, 1.5
#: A background sound's source stands this far from its pole (uniform), m.
BACKGROUND_SOURCE_M = (3.0, 10.0)
#: Gain applied to a background clip as recorded (uniform), dB.
BACKGROUND_GAIN_DB = (-12.0, 6.0)
#: Silence between two background clips of one pole (uniform), s.
BACKGROUND_GAP_S = (0.0, 2.0)
#: A background sound is rendered at the poles within this distance of its source, m.
HEARING_RADIUS_M = 300.0
#: Scripted events: one per this much simulated time on average, rendered within EVENT_RANGE_M.
EVENT_INTERVAL_S, EVENT_RANGE_M = 600.0, 600.0
#: Peak level of a scripted event at REFERENCE_DISTANCE_M, dB re full scale: a shot is louder.
EVENT_LEVEL_DB = {"gunshot": 0.0, "scream": -6.0, "glass_break": -6.0}
#: The last scripted event ends at least this long before the simulation does, s.
EVENT_TAIL_S = 10.0
#: Contributions whose peak at a pole is below this are not rendered, dBFS.
INAUDIBLE_DBFS = -60.0
#: Continuous noise of every pole (RMS), dBFS.
NOISE_DBFS = -65.0
#: Full scale of the poles' converters.
FULL_SCALE = 1.0

Kind = Literal["background", "scripted"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pole:
    sensor_id: str
    position_m: tuple[float, float, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sound:
    """One sound made in the city: a background clip at a pole or a scripted event.

    ``label`` is ``"negative"`` for backgrounds; ``subclass`` the manifest's (backgrounds) or
    the label (events); ``clip`` the file relative to the events folder; ``home_pole`` the
    index of the pole whose surroundings made a background sound (``None``: scripted).
    """

    index: int
    kind: Kind
    label: str
    subclass: str
    clip: str
    emission_time_s: float
    position_m: tuple[float, float, float]
    duration_s: float
    home_pole: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Contribution:
    """One sound as one pole hears it: from ``first_sample`` on, the clip times ``gain``."""

    sound: int
    pole: int
    first_sample: int
    n_samples: int
    gain: float
    peak_dbfs: float
    distance_m: float

    @property
    def arrival_time_s(self) -> float:
        return self.first_sample / SAMPLE_RATE_HZ


@dataclasses.dataclass(kw_only=True)
class City:
    """The poles, every sound, and every sound at every pole that hears it (by first sample)."""

    poles: list[Pole]
    sounds: list[Sound]
    waveforms: list[np.ndarray]  # by sound index, peak as the clip (backgrounds) or 1 (events)
    contributions: list[Contribution]
    duration_s: float
    temperature_c: float

    def __post_init__(self) -> None:
        by_pole: list[list[Contribution]] = [[] for _ in self.poles]
        self._by_sound: dict[int, list[Contribution]] = {}
        for c in sorted(self.contributions, key=lambda c: c.first_sample):
            by_pole[c.pole].append(c)
            self._by_sound.setdefault(c.sound, []).append(c)
        self._by_pole = [([c.first_sample for c in cs], cs) for cs in by_pole]
        self._longest = max((c.n_samples for c in self.contributions), default=0)

    @property
    def n_samples(self) -> int:
        return round(self.duration_s * SAMPLE_RATE_HZ)

    def scripted(self) -> list[Sound]:
        return [s for s in self.sounds if s.kind == "scripted"]

    def heard(self, sound_index: int) -> list[Contribution]:
        """Every pole's contribution of one sound, the pole it reaches first (the nearest) first."""
        return list(self._by_sound.get(sound_index, []))

    def at_pole(self, pole: int, time_s: float, *, slack_s: float) -> list[Contribution]:
        """Contributions that pole ``pole`` hears within ``slack_s`` of ``time_s``, loudest first."""
        starts, contributions = self._by_pole[pole]
        lo, hi = (time_s - slack_s) * SAMPLE_RATE_HZ, (time_s + slack_s) * SAMPLE_RATE_HZ
        begin = bisect.bisect_left(starts, lo - self._longest)  # nothing that began earlier still plays
        found = [
            c for c in contributions[begin : bisect.bisect_right(starts, hi)] if c.first_sample + c.n_samples >= lo
        ]
        return sorted(found, key=lambda c: -c.peak_dbfs)


def pole_grid(n_poles: int, *, rng: np.random.Generator) -> list[Pole]:
    """``n_poles`` poles on a near-square grid centred on the site origin, each jittered."""
    if n_poles < 1:
        raise ConfigError(f"--poles {n_poles}; expected at least 1")
    columns = math.ceil(math.sqrt(n_poles))
    rows = math.ceil(n_poles / columns)
    poles = []
    for k in range(n_poles):
        row, column = divmod(k, columns)
        jitter = rng.uniform(-POLE_JITTER_M, POLE_JITTER_M, 2)
        x = (column - (columns - 1) / 2) * POLE_SPACING_M + jitter[0]
        y = (row - (rows - 1) / 2) * POLE_SPACING_M + jitter[1]
        poles.append(
            Pole(sensor_id=f"pole-{k + 1:02d}", position_m=(round(float(x), 2), round(float(y), 2), POLE_HEIGHT_M))
        )
    return poles


def build_city(*, events_dir: Path, n_poles: int, duration_s: float, seed: int, temperature_c: float = 15.0) -> City:
    """Place every sound of a simulated city; see the module docstring.

    Raises
    ------
    ConfigError
        ``duration_s`` too short for one scripted event, or the manifest holds no
        ``dev``-split negatives (the message names the manifest).
    """
    if duration_s < 2 * EVENT_TAIL_S:
        raise ConfigError(f"--hours {duration_s / 3600:g} ({duration_s:g} s); expected at least {2 * EVENT_TAIL_S} s")
    rng = np.random.default_rng([seed, 0])
    poles = pole_grid(n_poles, rng=rng)
    manifest = events_dir / "manifest.csv"
    negatives = [c for c in read_manifest(manifest, split="dev") if c.label == "negative"]
    if not negatives:
        raise ConfigError(f"{manifest}: no rows with label 'negative' and split_hint 'dev'; expected the backgrounds")
    audio = load_clips(events_dir, negatives, sample_rate_hz=SAMPLE_RATE_HZ, cache_dir=None)
    builder = _Placer(poles=poles, c_m_per_s=speed_of_sound_m_per_s(temperature_c), duration_s=duration_s)
    for pole_index, pole in enumerate(poles):
        pole_rng = np.random.default_rng([seed, 1, pole_index])
        t = pole_rng.uniform(*BACKGROUND_GAP_S)
        order: list[int] = []
        while t < duration_s:
            if not order:
                order = list(pole_rng.permutation(len(negatives)))
            clip_index = int(order.pop())
            clip, waveform = negatives[clip_index], audio.waveform(clip_index)
            distance = pole_rng.uniform(*BACKGROUND_SOURCE_M)
            angle = pole_rng.uniform(0, 2 * math.pi)
            source = (pole.position_m[0] + distance * math.cos(angle), pole.position_m[1] + distance * math.sin(angle))
            gain = 10 ** (pole_rng.uniform(*BACKGROUND_GAIN_DB) / 20)
            sound = Sound(
                index=len(builder.sounds),
                kind="background",
                label="negative",
                subclass=clip.subclass or clip.source,
                clip=clip.path,
                emission_time_s=t,
                position_m=(*source, SOURCE_HEIGHT_M),
                duration_s=waveform.size / SAMPLE_RATE_HZ,
                home_pole=pole_index,
            )
            # The home pole hears the clip as recorded (times the gain); others less by spreading.
            home_m = max(_distance(sound.position_m, pole.position_m), MIN_DISTANCE_M)
            builder.place(sound, waveform, amplitude_at_m=gain * home_m, radius_m=HEARING_RADIUS_M)
            t += sound.duration_s + pole_rng.uniform(*BACKGROUND_GAP_S)
    _script_events(builder, seed=seed, duration_s=duration_s)
    builder.contributions.sort(key=lambda c: (c.first_sample, c.pole))
    return City(
        poles=poles,
        sounds=builder.sounds,
        waveforms=builder.waveforms,
        contributions=builder.contributions,
        duration_s=duration_s,
        temperature_c=temperature_c,
    )


def _script_events(builder: _Placer, *, seed: int, duration_s: float) -> None:
    """About one event per EVENT_INTERVAL_S, classes in turn, at random points inside the grid."""
    rng = np.random.default_rng([seed, 2])
    n_events = max(1, round(duration_s / EVENT_INTERVAL_S))
    slot_s = duration_s / n_events
    labels = [str(label) for label in rng.permutation(list(wire.Label))]
    xs = [p.position_m[0] for p in builder.poles]
    ys = [p.position_m[1] for p in builder.poles]
    for k in range(n_events):
        label = labels[k % len(labels)]
        time_s = min(k * slot_s + rng.uniform(0.2, 0.6) * slot_s, duration_s - EVENT_TAIL_S)
        event = SceneEvent(
            label=label,
            time_s=time_s,
            x_m=float(rng.uniform(min(xs), max(xs))),
            y_m=float(rng.uniform(min(ys), max(ys))),
            z_m=SOURCE_HEIGHT_M,
            clip="auto",
            level_db=EVENT_LEVEL_DB[label],
        )
        waveform = pick_sound(event, k, seed=seed, sample_rate_hz=SAMPLE_RATE_HZ)
        path, description = sound_source(event, k, seed=seed)
        sound = Sound(
            index=len(builder.sounds),
            kind="scripted",
            label=label,
            subclass=label,
            clip=description if path is None else Path(description).as_posix(),
            emission_time_s=time_s,
            position_m=(event.x_m, event.y_m, event.z_m),
            duration_s=waveform.size / SAMPLE_RATE_HZ,
        )
        amplitude_at_m = 10 ** (event.level_db / 20) * REFERENCE_DISTANCE_M
        builder.place(sound, waveform, amplitude_at_m=amplitude_at_m, radius_m=EVENT_RANGE_M)


@dataclasses.dataclass
class _Placer:
    poles: list[Pole]
    c_m_per_s: float
    duration_s: float
    sounds: list[Sound] = dataclasses.field(default_factory=list)
    waveforms: list[np.ndarray] = dataclasses.field(default_factory=list)
    contributions: list[Contribution] = dataclasses.field(default_factory=list)

    def place(self, sound: Sound, waveform: np.ndarray, *, amplitude_at_m: float, radius_m: float) -> None:
        """Add ``sound`` and its contribution at every pole within ``radius_m`` that hears it."""
        self.sounds.append(sound)
        self.waveforms.append(waveform)
        peak = float(np.max(np.abs(waveform), initial=0.0))
        for pole_index, pole in enumerate(self.poles):
            distance = _distance(sound.position_m, pole.position_m)
            gain = amplitude_at_m / max(distance, MIN_DISTANCE_M)
            if distance > radius_m or peak * gain <= 10 ** (INAUDIBLE_DBFS / 20):
                continue
            first = round((sound.emission_time_s + distance / self.c_m_per_s) * SAMPLE_RATE_HZ)
            if first >= self.duration_s * SAMPLE_RATE_HZ:
                continue
            self.contributions.append(
                Contribution(
                    sound=sound.index,
                    pole=pole_index,
                    first_sample=first,
                    n_samples=waveform.size,
                    gain=gain,
                    peak_dbfs=20 * math.log10(peak * gain),
                    distance_m=distance,
                )
            )


def _distance(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    return math.dist(a, b)


class CityRenderer:
    """Every pole's audio, block after block: noise plus every contribution that has begun."""

    def __init__(self, city: City, *, seed: int = 0) -> None:
        self.city = city
        self.position = 0
        self._rng = np.random.default_rng([seed, 3])
        self._noise_state = np.zeros((len(city.poles), 1))
        self._noise_gain = 10 ** (NOISE_DBFS / 20) * math.sqrt(1 - NOISE_POLE**2)
        self._next = 0  # first contribution not yet begun
        self._active: list[Contribution] = []

    def render(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` of every pole, float32 ``(n_poles, n_samples)``, within full scale."""
        city = self.city
        white = self._rng.standard_normal((len(city.poles), n_samples)) * self._noise_gain
        out, self._noise_state = scipy.signal.lfilter([1.0], [1.0, -NOISE_POLE], white, axis=1, zi=self._noise_state)
        start, stop = self.position, self.position + n_samples
        while self._next < len(city.contributions) and city.contributions[self._next].first_sample < stop:
            self._active.append(city.contributions[self._next])
            self._next += 1
        for c in self._active:
            lo, hi = max(start, c.first_sample), min(stop, c.first_sample + c.n_samples)
            if lo < hi:
                waveform = city.waveforms[c.sound]
                out[c.pole, lo - start : hi - start] += waveform[lo - c.first_sample : hi - c.first_sample] * c.gain
        self._active = [c for c in self._active if c.first_sample + c.n_samples > stop]
        self.position = stop
        return np.clip(out, -FULL_SCALE, FULL_SCALE).astype(np.float32)


__all__ = [
    "City",
    "CityRenderer",
    "Contribution",
    "Kind",
    "Pole",
    "Sound",
    "build_city",
    "pole_grid",
]
