"""Received level of an event at a distance: spreading, air absorption, screening, excess.

Everything here is a pure, vectorised function of numpy arrays; levels are dB re 20 µPa and
distances metres. The model, stated with its sources and its omissions in
``docs/coverage-physics.md``::

    L_received = L_source(1 m) - 20 log10(d / 1 m) - alpha(f, T, RH) d - excess d - D_z(delta)

* spherical spreading from a point source whose level is given at 1 m;
* air absorption ``alpha`` of ISO 9613-1:1993 (equations 3-5) at the class's band centre;
* screening by buildings on the straight path, ISO 9613-2:1996 equation (14) for single
  diffraction with C2 = 20, C3 = 1 and K_met = 1, capped (20 dB by default, the standard's
  cap for single diffraction);
* ``excess``: one fitted excess attenuation per kilometre (ground, scattering, refraction),
  fitted on ShotSpotter's Pittsburgh live-fire test (``sed.coverage.validate``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Reference distance of a source level, m.
REFERENCE_DISTANCE_M = 1.0
#: ISO 9613-1 reference conditions: 20 °C, 101.325 kPa.
REFERENCE_TEMPERATURE_K = 293.15
REFERENCE_PRESSURE_KPA = 101.325
#: Triple-point isotherm temperature of water (ISO 9613-1 equation B.3), K.
TRIPLE_POINT_K = 273.16
CELSIUS_TO_KELVIN = 273.15
#: For wavelengths in the barrier formula, m/s (a round figure; the formula is insensitive to 0.1 %).
SPEED_OF_SOUND_M_PER_S = 343.0
#: ISO 9613-2 equation (14): C2 = 20 (ground reflections handled separately), C3 = 1 (single diffraction).
BARRIER_C2 = 20.0
BARRIER_C3 = 1.0


@dataclasses.dataclass(frozen=True)
class ClassAcoustics:
    """What the range model needs to know about one event class.

    Attributes
    ----------
    label : str
        The detector's label (``gunshot``, ``scream``, ``glass_break``).
    source_level_db : float
        The event's 1-s Leq at 1 m, dB re 20 µPa (unweighted): the mean-square level of its
        loudest 1-second window, the quantity the SNR of ``DetectionCurve`` is defined on.
    frequency_hz : float > 0
        Band centre used for air absorption and diffraction: where the class's energy that
        the detector relies on lies.
    """

    label: str
    source_level_db: float
    frequency_hz: float


#: Defaults, configurable per plan. Sources (see ``docs/coverage-physics.md``):
#: gunshot: handgun muzzle blast peaks 155-165 dB SPL at 1 m (Rasmussen et al.,
#: "Measuring recreational firearm noise", Sound & Vibration 2009; Maher, "Acoustical
#: characterization of gunshots", IEEE SAFE 2007); a ~1 ms positive phase of a Friedlander
#: wave holds p_peak^2 * 1 ms / 3, so its 1-s Leq is the peak level - 35 dB: 125 dB at 160 dB
#: peak; energy between 500 Hz and 2 kHz at range (Maher 2007), band centre 1 kHz.
#: scream: shouted speech is 82-88 dB at 1 m (ANSI S3.5-1997: "shouted" speech 82.3 dB overall);
#: a scream is louder (taken as 100 dB, a judgement); its energy around 1-3 kHz, centre 2 kHz.
#: glass_break: breaking window glass, 90-100 dB 1-s Leq at 1 m (estimated from glass-break
#: detector test sounds, ~110 dB peak at 1 m); energy 3-6 kHz, centre 4 kHz.
DEFAULT_CLASSES: dict[str, ClassAcoustics] = {
    "gunshot": ClassAcoustics(label="gunshot", source_level_db=125.0, frequency_hz=1000.0),
    "scream": ClassAcoustics(label="scream", source_level_db=100.0, frequency_hz=2000.0),
    "glass_break": ClassAcoustics(label="glass_break", source_level_db=95.0, frequency_hz=4000.0),
}


@dataclasses.dataclass(frozen=True)
class RangeModel:
    """The few free parameters of the range model and the weather it assumes.

    Attributes
    ----------
    excess_db_per_km : float >= 0
        Attenuation beyond spreading, absorption and screening (ground, scattering by
        buildings and trees, refraction), dB per km of path. Default 0: the maximum-likelihood
        value on ShotSpotter's Pittsburgh test (fitted on all five firing positions and on
        every four of them) is 0, the lower bound of the fit, once screening is accounted
        for (``sedcity coverage validate``; ``benchmarks/results/coverage_validate.json``).
    barrier_cap_db : float >= 0
        Largest screening attenuation (ISO 9613-2: 20 dB for single diffraction).
    temperature_c : float
        Air temperature, °C (air absorption).
    relative_humidity_pct : float in (0, 100]
        Relative humidity, % (air absorption).
    """

    excess_db_per_km: float = 0.0
    barrier_cap_db: float = 20.0
    temperature_c: float = 15.0
    relative_humidity_pct: float = 70.0


def spreading_loss_db(*, distance_m: np.ndarray) -> np.ndarray:
    """Spherical spreading relative to the level at 1 m: ``20 log10(d / 1 m)``.

    Parameters
    ----------
    distance_m : np.ndarray [shape=(...)]
        Source-receiver distance, m. Distances under 1 m count as 1 m (a source level is
        defined at 1 m; the model does not extrapolate into the near field).

    Returns
    -------
    np.ndarray [shape=(...), dtype=float64], dB (>= 0)
    """
    distance = np.maximum(np.asarray(distance_m, dtype=np.float64), REFERENCE_DISTANCE_M)
    return 20.0 * np.log10(distance / REFERENCE_DISTANCE_M)


def air_absorption_db_per_km(
    *,
    frequency_hz: np.ndarray | float,
    temperature_c: float = 15.0,
    relative_humidity_pct: float = 70.0,
    pressure_kpa: float = REFERENCE_PRESSURE_KPA,
) -> np.ndarray:
    """Pure-tone atmospheric absorption coefficient of ISO 9613-1:1993, dB/km.

    Equations (3)-(5) of the standard with the saturation vapour pressure of its Annex B
    (equation B.1); the standard states +-10 % accuracy for 50 Hz-10 kHz, -20-50 °C,
    10-100 % RH. Example, ISO 9613-1 Table 1 / ISO 9613-2 Table 2: 1 kHz, 20 °C, 70 % RH:
    4.99 dB/km (rounded to 5.0 in ISO 9613-2).

    Parameters
    ----------
    frequency_hz : np.ndarray or float [shape=(...)], Hz > 0
    temperature_c : float, °C
    relative_humidity_pct : float in (0, 100], %
    pressure_kpa : float > 0, kPa

    Returns
    -------
    np.ndarray [shape=(...), dtype=float64], dB/km
    """
    f = np.asarray(frequency_hz, dtype=np.float64)
    temperature_k = temperature_c + CELSIUS_TO_KELVIN
    pa_rel = pressure_kpa / REFERENCE_PRESSURE_KPA
    t_rel = temperature_k / REFERENCE_TEMPERATURE_K
    # Annex B: saturation vapour pressure over the reference pressure, then molar concentration (%).
    psat_rel = 10.0 ** (-6.8346 * (TRIPLE_POINT_K / temperature_k) ** 1.261 + 4.6151)
    h = relative_humidity_pct * psat_rel / pa_rel
    fr_o = pa_rel * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = pa_rel * t_rel**-0.5 * (9.0 + 280.0 * h * np.exp(-4.170 * (t_rel ** (-1.0 / 3.0) - 1.0)))
    alpha_db_per_m = (
        8.686
        * f**2
        * (
            1.84e-11 / pa_rel * t_rel**0.5
            + t_rel**-2.5
            * (
                0.01275 * np.exp(-2239.1 / temperature_k) / (fr_o + f**2 / fr_o)
                + 0.1068 * np.exp(-3352.0 / temperature_k) / (fr_n + f**2 / fr_n)
            )
        )
    )
    return alpha_db_per_m * 1e3


def barrier_attenuation_db(*, path_difference_m: np.ndarray, frequency_hz: float, cap_db: float = 20.0) -> np.ndarray:
    """Screening by an obstacle on the straight path, ISO 9613-2:1996 equation (14).

    ``D_z = 10 log10(3 + (C2 / lambda) C3 z K_met)`` with C2 = 20, C3 = 1 (single
    diffraction: the building's roof edge, or the thickest one when several screen the
    path) and K_met = 1 (no meteorological correction: it would lower D_z for long paths,
    so taking 1 errs toward too much screening, i.e. too little coverage), capped at
    ``cap_db`` (the standard's 20 dB for single diffraction).

    Parameters
    ----------
    path_difference_m : np.ndarray [shape=(...)]
        z: the diffracted path over the obstacle's top minus the direct path, m; 0 (or less)
        for a clear line of sight, which gets no attenuation. A grazing path (z -> 0+) gets
        10 log10(3) = 4.8 dB, as in the standard.
    frequency_hz : float > 0
    cap_db : float >= 0

    Returns
    -------
    np.ndarray [shape=(...), dtype=float64], dB (0 where the path is clear)
    """
    z = np.asarray(path_difference_m, dtype=np.float64)
    wavelength_m = SPEED_OF_SOUND_M_PER_S / frequency_hz
    screened = z > 0.0
    dz = 10.0 * np.log10(3.0 + BARRIER_C2 / wavelength_m * BARRIER_C3 * np.where(screened, z, 0.0))
    return np.where(screened, np.minimum(dz, cap_db), 0.0)


def received_level_db(
    *,
    source_level_db: float,
    distance_m: np.ndarray,
    frequency_hz: float,
    path_difference_m: np.ndarray | None,
    model: RangeModel,
) -> np.ndarray:
    """An event's 1-s Leq at the receiver, dB re 20 µPa.

    Parameters
    ----------
    source_level_db : float
        1-s Leq at 1 m (:attr:`ClassAcoustics.source_level_db`).
    distance_m : np.ndarray [shape=(...)]
        Straight-line source-receiver distance, m (3-D where heights are known).
    frequency_hz : float > 0
        Band centre (:attr:`ClassAcoustics.frequency_hz`).
    path_difference_m : np.ndarray [shape=(...)] or None
        Screening path difference, m (see :func:`barrier_attenuation_db`); None: no buildings.
    model : RangeModel

    Returns
    -------
    np.ndarray [shape=(...), dtype=float64], dB re 20 µPa
    """
    distance = np.asarray(distance_m, dtype=np.float64)
    alpha_db_per_km = air_absorption_db_per_km(
        frequency_hz=frequency_hz,
        temperature_c=model.temperature_c,
        relative_humidity_pct=model.relative_humidity_pct,
    )
    level = (
        source_level_db
        - spreading_loss_db(distance_m=distance)
        - (alpha_db_per_km + model.excess_db_per_km) * distance / 1e3
    )
    if path_difference_m is not None:
        level = level - barrier_attenuation_db(
            path_difference_m=path_difference_m, frequency_hz=frequency_hz, cap_db=model.barrier_cap_db
        )
    return level


__all__ = [
    "DEFAULT_CLASSES",
    "SPEED_OF_SOUND_M_PER_S",
    "ClassAcoustics",
    "RangeModel",
    "air_absorption_db_per_km",
    "barrier_attenuation_db",
    "received_level_db",
    "spreading_loss_db",
]
