"""The simulated city: pole layout, propagation of every sound to the poles that hear it, rendering."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sed.bench import city as city_module
from sed.bench.city import (
    BACKGROUND_GAIN_DB,
    EVENT_RANGE_M,
    HEARING_RADIUS_M,
    POLE_JITTER_M,
    POLE_SPACING_M,
    SAMPLE_RATE_HZ,
    City,
    CityRenderer,
    Contribution,
    Pole,
    Sound,
    build_city,
    pole_grid,
)
from sed.errors import ConfigError
from sed.units import speed_of_sound_m_per_s


def write_events(root: Path, rng: np.random.Generator, *, n_negatives: int = 4) -> Path:
    """A tiny events folder: ``n_negatives`` dev-split noise bursts (and one train row) with a manifest."""
    (root / "negative").mkdir(parents=True)
    rows = ["path,label,split_hint,subclass"]
    for k in range(n_negatives + 1):
        path = f"negative/test__{k}.flac"
        burst = 0.3 * rng.standard_normal(SAMPLE_RATE_HZ // 2) * np.hanning(SAMPLE_RATE_HZ // 2)
        soundfile.write(root / path, burst.astype(np.float32), SAMPLE_RATE_HZ)
        rows.append(f"{path},negative,{'train' if k == n_negatives else 'dev'},burst {k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def city(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> City:
    monkeypatch.setenv("SED_SHARED_DATA", str(tmp_path / "absent"))  # scripted events: synthetic sounds
    return build_city(events_dir=write_events(tmp_path / "events", rng), n_poles=6, duration_s=120.0, seed=3)


def test_poles_stand_on_a_jittered_grid_150_m_apart(rng: np.random.Generator) -> None:
    poles = pole_grid(9, rng=rng)
    assert [p.sensor_id for p in poles] == [f"pole-{k:02d}" for k in range(1, 10)]
    for k, pole in enumerate(poles):
        row, column = divmod(k, 3)
        grid = ((column - 1) * POLE_SPACING_M, (row - 1) * POLE_SPACING_M)
        assert all(abs(pole.position_m[i] - grid[i]) <= POLE_JITTER_M + 0.01 for i in range(2))


def test_every_sound_reaches_the_poles_in_range_late_by_its_travel_and_quieter_by_distance(city: City) -> None:
    c = speed_of_sound_m_per_s(city.temperature_c)
    for sound in city.sounds:
        heard = city.heard(sound.index)
        radius = HEARING_RADIUS_M if sound.kind == "background" else EVENT_RANGE_M
        assert all(h.distance_m <= radius for h in heard)
        for h in heard:
            pole = city.poles[h.pole]
            assert h.distance_m == pytest.approx(math.dist(sound.position_m, pole.position_m))
            assert h.first_sample == round((sound.emission_time_s + h.distance_m / c) * SAMPLE_RATE_HZ)
        # spherical spreading: amplitude times distance is the same at every pole
        assert np.allclose([h.gain * h.distance_m for h in heard], heard[0].gain * heard[0].distance_m)
        if sound.kind == "background":
            home = next(h for h in heard if h.pole == sound.home_pole)
            low, high = (10 ** (db / 20) for db in BACKGROUND_GAIN_DB)
            assert low <= home.gain <= high  # the home pole hears the clip as recorded, times its gain
        # every pole in range hears it, unless it arrives after the end or below the floor
        peak = float(np.abs(city.waveforms[sound.index]).max()) * heard[0].gain * heard[0].distance_m
        expected = {
            k
            for k, pole in enumerate(city.poles)
            if (d := math.dist(sound.position_m, pole.position_m)) <= radius
            and sound.emission_time_s + d / c < city.duration_s
            and 20 * math.log10(peak / d) > city_module.INAUDIBLE_DBFS
        }
        assert {h.pole for h in heard} == expected
    # 150 m apart: a neighbour hears most background sounds
    backgrounds = [s for s in city.sounds if s.kind == "background"]
    assert sum(len(city.heard(s.index)) > 1 for s in backgrounds) > len(backgrounds) / 2


def test_each_pole_cycles_through_the_dev_negatives_and_a_scripted_event_is_placed(city: City) -> None:
    backgrounds = [s for s in city.sounds if s.kind == "background"]
    assert {s.clip for s in backgrounds} == {f"negative/test__{k}.flac" for k in range(4)}  # dev rows only
    for pole in range(len(city.poles)):
        mine = sorted((s for s in backgrounds if s.home_pole == pole), key=lambda s: s.emission_time_s)
        assert mine[-1].emission_time_s + mine[-1].duration_s >= city.duration_s - 2.0  # keeps playing to the end
        assert {s.clip for s in mine[:4]} == {s.clip for s in backgrounds}  # its own order, each clip once per cycle
    (event,) = city.scripted()
    assert event.label in ("gunshot", "scream", "glass_break") and event.clip == f"synthetic {event.label}"
    assert 0 < event.emission_time_s < city.duration_s - city_module.EVENT_TAIL_S + 1e-9
    assert len(city.heard(event.index)) == len(city.poles)  # a grid of 6 poles is well inside the range


def test_renderer_plays_each_contribution_from_its_arrival_sample_at_its_gain() -> None:
    waveform = np.linspace(-1.0, 1.0, 3000).astype(np.float32)
    sound = Sound(
        index=0,
        kind="background",
        label="negative",
        subclass="ramp",
        clip="x",
        emission_time_s=0.0,
        position_m=(0.0, 0.0, 1.5),
        duration_s=waveform.size / SAMPLE_RATE_HZ,
        home_pole=0,
    )
    poles = [Pole(sensor_id="a", position_m=(0.0, 0.0, 6.0)), Pole(sensor_id="b", position_m=(50.0, 0.0, 6.0))]
    contributions = [
        Contribution(sound=0, pole=0, first_sample=1500, n_samples=3000, gain=2.0, peak_dbfs=6.0, distance_m=4.5),
        Contribution(sound=0, pole=1, first_sample=9000, n_samples=3000, gain=0.1, peak_dbfs=-20.0, distance_m=50.0),
    ]
    city = City(
        poles=poles, sounds=[sound], waveforms=[waveform], contributions=contributions, duration_s=1.0, temperature_c=15
    )
    renderer = CityRenderer(city)
    audio = np.concatenate([renderer.render(n) for n in (1000, 4000, 11000)], axis=1)  # blocks cut the sounds
    assert audio.shape == (2, SAMPLE_RATE_HZ) and audio.dtype == np.float32
    noise = 10 ** (city_module.NOISE_DBFS / 20) * 6  # six sigma of the continuous noise
    assert np.abs(audio[:, :1500]).max() < noise
    expected = np.clip(waveform * 2.0, -1.0, 1.0)  # the converter saturates at full scale
    assert np.abs(audio[0, 1500:4500] - expected).max() < noise
    assert np.abs(audio[1, 9000:12000] - waveform * 0.1).max() < noise
    assert np.abs(audio[1, 12000:]).max() < noise
    assert city.at_pole(1, 9500 / SAMPLE_RATE_HZ, slack_s=0.1) == [contributions[1]]
    assert city.at_pole(1, 0.2, slack_s=0.1) == []


def test_a_manifest_without_dev_negatives_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label,split_hint\ngunshot/a.flac,gunshot,dev\n")
    with pytest.raises(ConfigError, match=r"manifest\.csv: no rows with label 'negative' and split_hint 'dev'"):
        build_city(events_dir=tmp_path, n_poles=2, duration_s=60.0, seed=0)


def test_too_few_poles_or_too_short_a_city_is_an_error(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="--poles 0"):
        pole_grid(0, rng=rng)
    with pytest.raises(ConfigError, match="--hours"):
        build_city(events_dir=tmp_path, n_poles=2, duration_s=5.0, seed=0)
