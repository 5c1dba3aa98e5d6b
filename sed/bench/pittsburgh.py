"""Reader for ShotSpotter's Pittsburgh live-fire test (CC BY 4.0, ShotSpotter, Inc.).

Layout (``README-shotspotter.md``): ``FPn/test_xxx/`` holds per test ``test_xxx.survey.json``
(firing position, rounds, surveyed shooter xyz), ``test_xxx.weather.json`` (temperature),
``test_xxx.allpulses.json`` (ShotSpotter's pulse picks on every reporting sensor, ms
resolution: direct sounds, echoes and unrelated impulses), ``test_xxx.nlos-tuples.json``
(ShotSpotter's grouping of pulses into shots) and, for up to six sensors, a 12 kHz WAV with
a JSON holding the sensor xyz and the UTC time of the WAV's first sample.

Time: the WAV start times are whole seconds, the same for every sensor of a test; the
recordings are zero-padded so that sample ``k`` is at ``timestamp + k / rate`` (checked:
ShotSpotter's own pulse times fall on the onsets in the audio to within a millisecond).
Runs of exact zeros are missing audio, not silence.

Coordinates: every firing position has its own arbitrary origin; never mix them. The axes
are taken as x east, y north (a local tangent plane, as the conversion from latitude and
longitude suggests); only the wind's direction depends on that.

Wind: ``weather.json`` gives the METAR wind speed (m/s) and the azimuth it blows *from*
(degrees clockwise from north); :attr:`LiveFireTest.wind_m_per_s` is the velocity it blows
*to*, (east, north).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

from sed.errors import SedError
from sed.units import NS_PER_S

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


class DatasetError(SedError):
    """A file of the live-fire dataset is missing, unreadable or malformed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pulse:
    """One pulse of ``allpulses.json``."""

    uuid: str
    serial: str
    position_m: tuple[float, float, float]
    arrival_time_ns: int
    snr_db: float
    power_db_spl: float = float("nan")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recording:
    """One sensor's WAV and its metadata."""

    serial: str
    position_m: tuple[float, float, float]
    wav_path: Path
    start_time_ns: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class LiveFireTest:
    """One test: a firearm fired 1 or 3 rounds from one surveyed position."""

    test_id: str
    firing_position: str
    firearm: str
    num_rounds: int
    survey_m: tuple[float, float, float]
    temperature_c: float
    pulses: tuple[Pulse, ...]
    #: ShotSpotter's pulse groups, one per located shot (``shot_index`` order).
    shot_pulse_uuids: tuple[tuple[str, ...], ...]
    recordings: tuple[Recording, ...]
    #: Wind velocity (east, north), m/s: where the air moves *to*.
    wind_m_per_s: tuple[float, float] = (0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why."""

    path: str
    reason: str


def parse_utc_ns(text: str, *, where: str) -> int:
    """``2018-12-19T00:49:27.467Z`` as integer UTC nanoseconds (exact, no float rounding)."""
    match = _TIME_RE.match(text)
    if match is None:
        raise DatasetError(f"{where}: time {text!r} is not of the form YYYY-MM-DDTHH:MM:SS[.fff]Z")
    whole = dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.UTC)
    fraction = (match.group(2) or "").ljust(9, "0")
    return int(whole.timestamp()) * NS_PER_S + int(fraction)


def load_tests(
    root: Path, *, firing_positions: tuple[str, ...] | None = None
) -> tuple[list[LiveFireTest], list[Problem]]:
    """Every readable test under ``root`` (the ``pittsburgh`` folder), and what was skipped.

    Parameters
    ----------
    root : Path
        Folder holding ``FP1`` … ``FPn``.
    firing_positions : tuple of str, optional
        Only these (e.g. ``("FP1", "FP3")``); default all found.

    Returns
    -------
    tests : list of LiveFireTest
        By firing position, then test id. A test whose survey, weather, pulses or tuples
        cannot be read is skipped; an unreadable sensor WAV/JSON only drops that recording.
    problems : list of Problem
        One per skipped file, naming it.

    Raises
    ------
    DatasetError
        ``root`` holds no ``FP*/test_*`` folders.
    """
    test_dirs = sorted(p for p in root.glob("FP*/test_*") if p.is_dir())
    if not test_dirs:
        raise DatasetError(f"{root}: no FP*/test_* folders; expected the Pittsburgh live-fire dataset")
    tests: list[LiveFireTest] = []
    problems: list[Problem] = []
    for test_dir in test_dirs:
        if firing_positions is not None and test_dir.parent.name not in firing_positions:
            continue
        try:
            test, skipped = _load_test(test_dir)
        except (OSError, ValueError, KeyError, TypeError, DatasetError) as exc:
            problems.append(Problem(str(test_dir), f"{type(exc).__name__}: {exc}"))
            continue
        tests.append(test)
        problems += skipped
    return tests, problems


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable JSON ({exc})") from exc


def _xyz(value: dict[str, Any], *, where: str) -> tuple[float, float, float]:
    try:
        return (float(value["x"]), float(value["y"]), float(value["z"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: location {value!r} lacks numeric x, y, z") from exc


def _load_test(test_dir: Path) -> tuple[LiveFireTest, list[Problem]]:
    test_id = test_dir.name
    survey_path = test_dir / f"{test_id}.survey.json"
    survey = _read_json(survey_path)
    weather = _read_json(test_dir / f"{test_id}.weather.json")
    pulses_path = test_dir / f"{test_id}.allpulses.json"
    pulses = tuple(
        Pulse(
            uuid=str(p["pulse_uuid"]),
            serial=str(p["serial_number"]),
            position_m=_xyz(p["location"], where=str(pulses_path)),
            arrival_time_ns=parse_utc_ns(p["arrival_time_utc"], where=str(pulses_path)),
            snr_db=float(p.get("signal_to_noise_dB", float("nan"))),
            power_db_spl=float(p.get("power_dB_SPL", float("nan"))),
        )
        for p in _read_json(pulses_path)
    )
    tuples = sorted(_read_json(test_dir / f"{test_id}.nlos-tuples.json"), key=lambda t: int(t["shot_index"]))
    recordings: list[Recording] = []
    problems: list[Problem] = []
    for meta_path in sorted(test_dir.glob(f"{test_id}.audio.*.json")):
        wav_path = meta_path.with_suffix(".wav")
        try:
            meta = _read_json(meta_path)
            if not wav_path.is_file():
                raise DatasetError(f"{wav_path}: missing")
            recordings.append(
                Recording(
                    serial=str(meta["serial_number"]),
                    position_m=_xyz(meta["location"], where=str(meta_path)),
                    wav_path=wav_path,
                    start_time_ns=parse_utc_ns(meta["timestamp"], where=str(meta_path)),
                )
            )
        except (KeyError, TypeError, DatasetError) as exc:
            problems.append(Problem(str(meta_path), f"{type(exc).__name__}: {exc}"))
    test = LiveFireTest(
        test_id=test_id,
        firing_position=str(survey["firing_position"]),
        firearm=str(survey["firearm"]),
        num_rounds=int(survey["num_rounds"]),
        survey_m=_xyz(survey["survey_location"], where=str(survey_path)),
        temperature_c=float(weather["temperature"]),
        pulses=pulses,
        shot_pulse_uuids=tuple(tuple(str(u) for u in t["pulse_uuids"]) for t in tuples),
        recordings=tuple(recordings),
        wind_m_per_s=_wind(weather),
    )
    return test, problems


def _wind(weather: dict[str, Any]) -> tuple[float, float]:
    """METAR speed and from-azimuth as the velocity the air moves to, (east, north) m/s."""
    speed_m_per_s = float(weather.get("speed", 0.0) or 0.0)
    from_rad = math.radians(float(weather.get("direction", 0.0) or 0.0))
    return (-speed_m_per_s * math.sin(from_rad), -speed_m_per_s * math.cos(from_rad))


__all__ = ["DatasetError", "LiveFireTest", "Problem", "Pulse", "Recording", "load_tests", "parse_utc_ns"]
