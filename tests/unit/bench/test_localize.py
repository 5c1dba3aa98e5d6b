"""``sed bench localize``: on a small synthetic live-fire folder (no data needed), and in pulses
mode on one real firing position (``data`` mark); both through the fusion node's incident builder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.bench.localize import main
from sed.bench.localize_pulses import pulse_arrivals
from sed.bench.pittsburgh import DatasetError, load_tests, parse_utc_ns
from sed.units import speed_of_sound_m_per_s

SAMPLE_RATE_HZ = 12_000
START_UTC = "2018-12-19T00:49:26.000Z"
SURVEY_M = (-11450.0, 3650.0, -90.0)
SENSORS_M = [(-11620.0, 3370.0), (-11740.0, 3730.0), (-11250.0, 3585.0), (-11155.0, 3375.0), (-11415.0, 3985.0)]


def _utc(offset_s: float) -> str:
    whole, ms = divmod(round(offset_s * 1000), 1000)
    return f"2018-12-19T00:49:{26 + whole:02d}.{ms:03d}Z"


def _write_test(folder: Path, rng: np.random.Generator, shot_times_s: tuple[float, ...]) -> None:
    """A test folder in the dataset's layout: exact pulses, tuples and WAVs with shot bursts."""
    test_dir = folder / "FP9" / "test_001"
    test_dir.mkdir(parents=True)
    c = speed_of_sound_m_per_s(0.0)
    survey = {
        "test_id": 1, "firing_position": "FP9", "num_rounds": len(shot_times_s), "firearm": "synthetic",
        "survey_location": dict(zip("xyz", SURVEY_M, strict=True)),
    }  # fmt: skip
    (test_dir / "test_001.survey.json").write_text(json.dumps(survey))
    (test_dir / "test_001.weather.json").write_text(json.dumps({"temperature": 0.0}))
    pulses, tuples = [], [{"shot_index": k, "pulse_uuids": []} for k in range(len(shot_times_s))]
    for i, (x, y) in enumerate(SENSORS_M):
        serial = f"SCP-{i}"
        z = -100.0 + 10 * i
        location = {"x": x, "y": y, "z": z}
        audio = 3e-3 * rng.standard_normal(10 * SAMPLE_RATE_HZ)
        audio[:SAMPLE_RATE_HZ] = 0.0  # the padding real files have
        delay_s = np.hypot(x - SURVEY_M[0], y - SURVEY_M[1]) / c
        for k, emission_s in enumerate(shot_times_s):
            at = round((emission_s + delay_s) * SAMPLE_RATE_HZ)
            burst = rng.standard_normal(600) * np.exp(-np.arange(600) / 60.0)
            audio[at : at + 600] += 0.5 * burst
            audio[at + 400 : at + 1000] += 0.3 * burst  # an echo 33 ms later
            uuid = f"p{i}-{k}"
            pulses.append(
                {"pulse_uuid": uuid, "serial_number": serial, "arrival_time_utc": _utc(emission_s + delay_s),
                 "location": location, "signal_to_noise_dB": 30.0}
            )  # fmt: skip
            tuples[k]["pulse_uuids"].append(uuid)
        sf.write(test_dir / f"test_001.audio.{serial}.wav", audio.astype(np.float32), SAMPLE_RATE_HZ, subtype="PCM_16")
        meta = {"serial_number": serial, "timestamp": START_UTC, "location": location}
        (test_dir / f"test_001.audio.{serial}.json").write_text(json.dumps(meta))
    (test_dir / "test_001.allpulses.json").write_text(json.dumps(pulses))
    (test_dir / "test_001.nlos-tuples.json").write_text(json.dumps(tuples))


def test_utc_times_parse_to_exact_nanoseconds() -> None:
    assert parse_utc_ns("2018-12-19T00:49:27.467Z", where="x") - parse_utc_ns(START_UTC, where="x") == 1_467_000_000
    with pytest.raises(DatasetError, match=r"pulses\.json"):
        parse_utc_ns("yesterday", where="pulses.json")


def test_synthetic_folder_is_located_in_both_modes_and_bad_files_are_named(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_test(tmp_path / "data", rng, shot_times_s=(1.2, 2.4, 3.5))
    broken = tmp_path / "data" / "FP9" / "test_001" / "test_001.audio.SCP-4.wav"
    broken.write_bytes(b"RIFF garbage")
    out = tmp_path / "report.json"
    status = main(
        [str(tmp_path / "data"), "--mode", "both", "--firing-positions", "FP9", "--out", str(out), "--no-progress",
         "--min-sensors", "4", "--min-participation", "0"],
        prog="sed bench localize",
    )  # fmt: skip
    assert status == 0
    report = json.loads(out.read_text())
    assert [p["path"] for p in report["problems"]] == [str(broken)]
    assert "test_001.audio.SCP-4.wav" in capsys.readouterr().err
    for mode in ("pulses", "audio"):
        summary = report["modes"][mode]["per_firing_position"]["FP9"]
        assert summary["located"] == summary["fired"] == 3
        assert summary["median_error_m"] < 1.0
        shots = report["modes"][mode]["shots"]
        assert {s["shot_index"] for s in shots} == {0, 1, 2}
        assert all(len(s["sensors"]) >= 4 and s["ellipse_95_m"] is not None for s in shots)
    assert report["modes"]["pulses"]["per_firing_position"]["FP9"]["association_recall"] == 1.0
    for mode in ("pulses", "audio"):  # both associations ran through the builder, the better one is named
        primary = report["modes"][mode]
        assert primary["settings"]["association"] == "neighbourhood"
        assert primary["settings"]["min_participation"] == 0.0 and primary["settings"]["incident_merge_s"] == 0.0
        other = primary["associations"]["likelihood"]
        # Five sensors: every round; four (audio, one WAV broken): the builder's likelihood pool is the
        # seed's neighbours only, and with four sensors it took one round's echoes for a source.
        assert other["per_firing_position"]["FP9"]["located"] >= (3 if mode == "pulses" else 2)
        assert primary["better_association"] in ("neighbourhood", "likelihood")
        assert primary["node"]["detections"] > 0 and primary["node"]["not_drained"] == 0
    assert report["modes"]["audio"]["settings"]["picker"]["min_snr_db"] == 9.0
    assert (tmp_path / "report_FP9.png").is_file()
    assert report["meta"]["git_commit"]


def test_metar_wind_becomes_the_velocity_the_air_moves_to(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_test(tmp_path, rng, shot_times_s=(1.2,))
    weather = tmp_path / "FP9" / "test_001" / "test_001.weather.json"
    weather.write_text(json.dumps({"temperature": 0.0, "speed": 2.0, "direction": 90.0}))  # from the east
    (test,), _ = load_tests(tmp_path)
    assert test.wind_m_per_s == pytest.approx((-2.0, 0.0), abs=1e-12)


def test_a_pulse_after_a_louder_one_of_its_sensor_is_judged_less_direct(tmp_path: Path) -> None:
    def pulse(uuid: str, serial: str, offset_s: float, power_db: float, snr_db: float) -> dict[str, object]:
        return {
            "pulse_uuid": uuid, "serial_number": serial, "arrival_time_utc": _utc(offset_s),
            "location": {"x": 0.0, "y": 0.0, "z": 0.0}, "signal_to_noise_dB": snr_db, "power_dB_SPL": power_db,
        }  # fmt: skip

    _write_test(tmp_path, np.random.default_rng(0), shot_times_s=(1.2,))
    pulses = [pulse("direct", "A", 1.0, 90.0, 25.0), pulse("echo", "A", 1.1, 84.0, 25.0),
              pulse("later", "A", 2.0, 84.0, 25.0), pulse("other", "B", 1.1, 84.0, 25.0)]  # fmt: skip
    (tmp_path / "FP9" / "test_001" / "test_001.allpulses.json").write_text(json.dumps(pulses))
    (test,), _ = load_tests(tmp_path)
    judged = {a.detection_id: a.directness for a in pulse_arrivals(test)}
    # Same SNR everywhere: only the louder pulse 100 ms earlier on sensor A tells the echo.
    assert judged["echo"] < judged["direct"] - 2.0
    assert judged["later"] == judged["other"] > judged["echo"]


def test_folder_without_tests_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no FP"):
        load_tests(tmp_path)


@pytest.mark.data
def test_pulses_mode_locates_every_round_of_one_firing_position(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp3.json"
    status = main(
        [str(data_dir / "pittsburgh"), "--mode", "pulses", "--firing-positions", "FP3", "--out", str(out),
         "--no-progress", "--no-plots", "--association", "neighbourhood"],
        prog="sed bench localize",
    )  # fmt: skip
    assert status == 0
    summary = json.loads(out.read_text())["modes"]["pulses"]["per_firing_position"]["FP3"]
    assert summary["located"] == summary["fired"] == 36
    assert summary["association_recall"] >= 0.9
    assert summary["median_error_m"] < 2.0  # ShotSpotter's own tuples, our solver: RMS ~2.1 m
    assert summary["median_located_after_s"] < 10.0  # association wait + the sound's neighbourhood
