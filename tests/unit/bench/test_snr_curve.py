"""``sedcity bench snr-curve``: SNR arithmetic, intervals, the overlap rule, and a whole run on a tiny manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.bench import snr_curve
from sed.bench.runner import Detection
from sed.errors import ConfigError
from sed.models.detection_curve import CURVE_FORMAT, DetectionCurve
from tests.conftest import shot_burst, tone

RATE = 16000


def test_event_leq_is_the_loudest_second_and_a_short_event_is_spread_over_one() -> None:
    half_second = tone(1000.0, 0.5, amplitude=0.5)  # mean square 0.125 over 0.5 s -> 0.0625 over 1 s
    assert snr_curve.event_leq_db(half_second) == pytest.approx(10 * np.log10(0.0625), abs=0.01)
    loud_then_quiet = np.concatenate([tone(1000.0, 1.0, amplitude=0.5), tone(1000.0, 2.0, amplitude=0.05)])
    assert snr_curve.event_leq_db(loud_then_quiet) == pytest.approx(10 * np.log10(0.125), abs=0.01)


@pytest.mark.parametrize("snr_db", [-20.0, 0.0, 12.5])
def test_mixing_sets_the_snr_of_the_shared_definition(rng: np.random.Generator, snr_db: float) -> None:
    background = (0.002 * rng.standard_normal(5 * RATE)).astype(np.float32)  # quiet: no mixture clips
    event = shot_burst(rng)
    level = snr_curve.event_leq_db(event)
    mix = snr_curve.mix_at_snr(background, event, start_sample=RATE, snr_db=snr_db, event_leq=level)
    added = mix - background
    assert snr_curve.event_leq_db(added[RATE : RATE + len(event)]) - snr_curve.leq_db(background) == pytest.approx(
        snr_db, abs=0.01
    )
    assert np.array_equal(mix[:RATE], background[:RATE])  # nothing outside the event's span changes


def test_a_mixture_that_would_clip_is_scaled_down_whole_keeping_the_snr(rng: np.random.Generator) -> None:
    background = (0.05 * rng.standard_normal(3 * RATE)).astype(np.float32)
    event = shot_burst(rng)
    mix = snr_curve.mix_at_snr(
        background, event, start_sample=RATE, snr_db=40.0, event_leq=snr_curve.event_leq_db(event)
    )
    assert np.max(np.abs(mix)) == pytest.approx(snr_curve.PEAK_LIMIT, rel=1e-6)
    scale = mix[0] / background[0]
    event_part = mix[RATE : RATE + len(event)] - scale * background[RATE : RATE + len(event)]
    measured = snr_curve.event_leq_db(event_part) - snr_curve.leq_db(scale * background)
    assert measured == pytest.approx(40.0, abs=0.01)


def test_clopper_pearson_matches_closed_forms_at_the_ends() -> None:
    low, high = snr_curve.clopper_pearson(np.array([0, 10, 5]), np.array([10, 10, 10]))
    assert low[0] == 0.0 and high[0] == pytest.approx(1 - 0.025**0.1, abs=1e-9)
    assert high[1] == 1.0 and low[1] == pytest.approx(0.025**0.1, abs=1e-9)
    assert low[2] == pytest.approx(0.1871, abs=1e-4) and high[2] == pytest.approx(0.8129, abs=1e-4)


def test_a_detection_counts_only_for_its_class_and_within_the_collar() -> None:
    def det(onset_s: float, offset_s: float, label: str = "gunshot") -> Detection:
        return Detection(onset_s=onset_s, offset_s=offset_s, label=label, score=0.9)

    span = {"start_s": 3.0, "stop_s": 3.4}
    assert snr_curve.detected([det(3.1, 4.0)], label="gunshot", **span)
    assert snr_curve.detected([det(3.8, 4.5)], label="gunshot", **span)  # onset within 0.5 s after the end
    assert not snr_curve.detected([det(3.95, 4.5)], label="gunshot", **span)
    assert not snr_curve.detected([det(1.0, 2.45)], label="gunshot", **span)  # ended before the collar
    assert not snr_curve.detected([det(3.1, 4.0, label="scream")], label="gunshot", **span)


def test_background_stretch_has_the_stated_level_and_length(rng: np.random.Generator) -> None:
    clips = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in (3000, 40000)]
    stretch = snr_curve.background_stretch(clips, 50000, rng)
    assert stretch.shape == (50000,) and stretch.dtype == np.float32
    assert snr_curve.leq_db(stretch) == pytest.approx(snr_curve.BACKGROUND_DBFS, abs=0.01)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Two dev events per class, ambient dev noise, and a train clip that must never be read."""
    rng = np.random.default_rng(5)
    rows = []

    def add(name: str, audio: np.ndarray, label: str, split: str, subclass: str) -> None:
        (tmp_path / label).mkdir(exist_ok=True)
        sf.write(tmp_path / label / name, audio, RATE, subtype="PCM_16")
        rows.append({"path": f"{label}/{name}", "label": label, "split_hint": split, "subclass": subclass})

    for k in range(2):
        add(f"shot{k}.wav", 0.9 * shot_burst(rng), "gunshot", "dev", "")
        add(f"scream{k}.wav", tone(900.0 + 200 * k, 1.2, amplitude=0.5), "scream", "dev", "")
        add(f"glass{k}.wav", 0.5 * shot_burst(rng, decay_s=0.1), "glass_break", "dev", "")
        add(f"noise{k}.wav", (0.1 * rng.standard_normal(4 * RATE)).astype(np.float32), "negative", "dev", "noise: hum")
    add("firework.wav", 0.9 * shot_burst(rng), "negative", "dev", "fireworks")  # not ambient: not a background
    rows.append({"path": "gunshot/train_only.wav", "label": "gunshot", "split_hint": "train", "subclass": ""})
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split_hint", "subclass"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_run_writes_a_curve_the_planner_reads_plus_counts_and_a_plot(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "curve.json"
    argv = [str(manifest), "--out", str(out), "--snr-db", "-30", "40", "--repeats", "2", "--limit", "1"]
    assert snr_curve.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["format"] == CURVE_FORMAT and report["snr_db"] == [-30.0, 40.0]
    assert report["mixtures"]["background_clips"] == 2  # the fireworks clip is no background
    assert report["mixtures"]["clips"]["gunshot"] == ["gunshot/shot0.wav"]  # dev only, --limit 1
    for label in ("gunshot", "scream", "glass_break"):
        entry = report["classes"][label]
        assert entry["n_clips"] == 1 and entry["n_trials"] == [2, 2]
        assert entry["background_only"]["n_trials"] == 2
        assert all(0 <= lo <= hi <= 1 for lo, hi in zip(entry["ci95_low"], entry["ci95_high"], strict=True))
        assert entry["p_detect"] == sorted(entry["p_detect"])
    assert out.with_suffix(".png").stat().st_size > 1000
    curve = DetectionCurve.from_file(out)
    assert set(curve.labels) == {"gunshot", "scream", "glass_break"}


def test_bad_arguments_fail_before_any_audio_is_read(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--out .*curve.txt: expected a .json file name"):
        snr_curve.main([str(manifest), "--out", str(tmp_path / "curve.txt")])
    with pytest.raises(ConfigError, match=r"--snr-db \[5.0\]; expected at least 2 distinct"):
        snr_curve.main([str(manifest), "--out", str(tmp_path / "c.json"), "--snr-db", "5", "5"])
    with pytest.raises(SystemExit):
        snr_curve.main([str(manifest), "--out", str(tmp_path / "c.json"), "--limit", "0"])


def test_a_long_event_is_cropped_to_its_loudest_stretch(rng: np.random.Generator) -> None:
    audio = (0.01 * rng.standard_normal(5 * RATE)).astype(np.float32)
    audio[3 * RATE : 3 * RATE + 4000] += 0.8 * shot_burst(rng)[:4000]
    start, stop = snr_curve.loudest_span(audio, n_samples=RATE, offset=100)
    assert stop - start == RATE
    assert start - 100 <= 3 * RATE and stop - 100 >= 3 * RATE + 4000  # the burst lies inside
    assert snr_curve.loudest_span(audio[:500], n_samples=RATE) == (0, 500)  # shorter than asked: all of it


def test_silent_background_pieces_are_never_used(rng: np.random.Generator) -> None:
    silent = np.zeros(40000, np.float32)
    noise = (0.1 * rng.standard_normal(3000)).astype(np.float32)
    stretch = snr_curve.background_stretch([silent, noise], 30000, rng)
    frames = stretch[: 30000 // 320 * 320].reshape(-1, 320)
    assert np.all(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) > 1e-3)  # no silent 20 ms anywhere


def test_background_pieces_are_cross_faded_not_butted(rng: np.random.Generator) -> None:
    ramp = np.linspace(-1.0, 1.0, 5000, dtype=np.float32)  # a hard join would jump by up to 2 x RMS
    stretch = snr_curve.background_stretch([ramp], 30000, rng)
    rms = np.sqrt(np.mean(stretch.astype(np.float64) ** 2))
    assert np.max(np.abs(np.diff(stretch))) < 0.05 * rms  # joins ramp over 10 ms


def test_background_clips_too_short_to_fill_a_stretch_are_one_clear_error(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match=r"background draws did not fill 48000 samples; clips too short"):
        snr_curve.background_stretch([np.ones(100, np.float32)], 48000, rng)


def test_any_stretch_length_is_filled_even_when_only_a_sliver_is_left(rng: np.random.Generator) -> None:
    clip = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    for n_samples in (15840 + 100, 2 * 15840 + 170, 700, 16000):  # leave 100, 170 ... samples after whole pieces
        assert snr_curve.background_stretch([clip], n_samples, rng).shape == (n_samples,)
