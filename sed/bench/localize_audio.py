"""Audio mode of ``sed bench localize``: our picker on the WAVs, and GCC-PHAT refinement.

A test's recordings are read once (:func:`read_recordings`); every onset our picker finds
becomes an :class:`~sed.fusion.locate.Arrival` (:func:`audio_arrivals`), exactly as a sensor
would report it, with the pick's power jump as its quality (direct sounds jump out of the
quiet before them; echoes arrive in the tail of a louder sound). After association,
:func:`refine_with_gcc` can re-time each member against the group's strongest member by
cross-correlating the two clips around their picks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import soundfile as sf

from sed.bench.pittsburgh import LiveFireTest, Problem, Recording
from sed.dsp.gcc import gcc_phat
from sed.dsp.onset import find_onsets
from sed.fusion.associate import Group
from sed.fusion.locate import Arrival, Solution, SolveStatus
from sed.units import NS_PER_S, speed_of_sound_m_per_s

#: Floor added to the picker's uncertainty for paths bent by buildings, ns.
AUDIO_UNCERTAINTY_FLOOR_NS = 2_000_000
#: GCC clip around a pick: this much before and after, s; and the lag search range, s.
GCC_BEFORE_S = 0.005
GCC_AFTER_S = 0.025
GCC_MAX_LAG_S = 0.002


@dataclasses.dataclass(frozen=True)
class Clip:
    """One sensor's recording: samples (float32), rate and metadata."""

    audio: np.ndarray
    sample_rate_hz: int
    recording: Recording


def read_recordings(test: LiveFireTest, problems: list[Problem]) -> dict[str, Clip]:
    """The test's WAVs by sensor serial; unreadable or multichannel files go to ``problems``."""
    clips = {}
    for recording in test.recordings:
        try:
            audio, sample_rate_hz = sf.read(recording.wav_path, dtype="float32", always_2d=False)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            problems.append(Problem(str(recording.wav_path), f"unreadable audio: {exc}"))
            continue
        if audio.ndim != 1:
            problems.append(Problem(str(recording.wav_path), f"{audio.shape[1]} channels; expected mono"))
            continue
        clips[recording.serial] = Clip(audio=audio, sample_rate_hz=int(sample_rate_hz), recording=recording)
    return clips


def audio_arrivals(
    clips: dict[str, Clip],
    *,
    min_dominance_db: float = -np.inf,
    min_snr_db: float = 12.0,
    jump_db: float = 9.0,
) -> list[Arrival]:
    """Every onset (:func:`~sed.dsp.onset.find_onsets` with ``min_snr_db`` and ``jump_db``)
    that dominates the 300 ms before it by ``min_dominance_db``, as an arrival with the
    pick's jump as ``quality`` and its :attr:`~sed.dsp.onset.Pick.directness`."""
    arrivals = []
    for serial, clip in clips.items():
        sr = clip.sample_rate_hz
        picks = [
            p
            for p in find_onsets(clip.audio, sample_rate_hz=sr, min_snr_db=min_snr_db, jump_db=jump_db)
            if p.dominance_db >= min_dominance_db
        ]
        for k, pick in enumerate(picks):
            sigma_ns = pick.uncertainty_samples / sr * NS_PER_S
            arrivals.append(
                Arrival(
                    sensor_id=serial,
                    position_m=clip.recording.position_m,
                    arrival_time_ns=clip.recording.start_time_ns + round(pick.sample_index / sr * NS_PER_S),
                    uncertainty_ns=round(float(np.hypot(sigma_ns, AUDIO_UNCERTAINTY_FLOOR_NS))),
                    label="gunshot",
                    detection_id=f"{serial}/{k}",
                    quality=pick.jump_db,
                    directness=pick.directness,
                )
            )
    return arrivals


def refine_with_gcc(group: Group, clips: dict[str, Clip], *, solve: Callable[[list[Arrival]], Solution]) -> Group:
    """Re-time members by GCC-PHAT against the highest-quality member, then re-locate with
    ``solve`` (e.g. :func:`~sed.fusion.locate.locate` with the test's temperature).

    A member keeps its own pick when its clip is cut short by missing audio. The group is
    returned unchanged if the refined arrivals do not locate.
    """
    reference = max(group.arrivals, key=lambda a: a.quality)
    reference_clip = _cut(reference, clips)
    if reference_clip is None:
        return group
    sr = clips[reference.sensor_id].sample_rate_hz
    refined = []
    for arrival in group.arrivals:
        clip = _cut(arrival, clips) if arrival is not reference else None
        if clip is None or clip.size != reference_clip.size:
            refined.append(arrival)
            continue
        lag = gcc_phat(reference_clip, clip, max_lag_samples=round(GCC_MAX_LAG_S * sr))
        shift_ns = round(lag.lag_samples / sr * NS_PER_S)
        refined.append(dataclasses.replace(arrival, arrival_time_ns=arrival.arrival_time_ns + shift_ns))
    solution = solve(refined)
    if solution.status is not SolveStatus.LOCATED:
        return group
    return dataclasses.replace(group, arrivals=tuple(refined), solution=solution)


def coverage(test: LiveFireTest, clips: dict[str, Clip], origin_time_ns: int | None) -> int | None:
    """How many recordings hold audio (not padding) 50 ms either side of the direct arrival
    predicted from the survey point and ``origin_time_ns``; None without an origin time.

    Only a denominator for scoring: a shot missing from the audio cannot be located from it.
    """
    if origin_time_ns is None:
        return None
    c = speed_of_sound_m_per_s(test.temperature_c)
    margin_s, count = 0.05, 0
    for clip in clips.values():
        position = clip.recording.position_m
        distance_m = float(np.hypot(position[0] - test.survey_m[0], position[1] - test.survey_m[1]))
        at_s = (origin_time_ns - clip.recording.start_time_ns) / NS_PER_S + distance_m / c
        start, stop = round((at_s - margin_s) * clip.sample_rate_hz), round((at_s + margin_s) * clip.sample_rate_hz)
        if start >= 0 and stop <= clip.audio.size and np.count_nonzero(clip.audio[start:stop]) > 0.5 * (stop - start):
            count += 1
    return count


def _cut(arrival: Arrival, clips: dict[str, Clip]) -> np.ndarray | None:
    clip = clips.get(arrival.sensor_id)
    if clip is None:
        return None
    sr = clip.sample_rate_hz
    at = round((arrival.arrival_time_ns - clip.recording.start_time_ns) / NS_PER_S * sr)
    start, stop = at - round(GCC_BEFORE_S * sr), at + round(GCC_AFTER_S * sr)
    if start < 0 or stop > clip.audio.size or not np.any(clip.audio[start:stop]):
        return None
    return clip.audio[start:stop].astype(np.float64)


__all__ = ["AUDIO_UNCERTAINTY_FLOOR_NS", "Clip", "audio_arrivals", "coverage", "read_recordings", "refine_with_gcc"]
