"""``sed render-scene``: streams, ground truth and annotations on disk agree with the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sed.capture.render import render_scene
from sed.cli import main as cli
from sed.units import speed_of_sound_m_per_s

SCENE = """
[scene]
duration_s = 3.0
temperature_c = 20.0
noise_dbfs = -70.0
sensors = [{ id = "a", x_m = 0, y_m = 0, z_m = 1.5 }, { id = "b", x_m = 170, y_m = 0, z_m = 1.5 }]
[[scene.events]]
label = "gunshot"
time_s = 0.5
x_m = 34.3
y_m = 0
clip = "synthetic"
[[scene.events]]
label = "negative"
time_s = 2.0
x_m = 0
y_m = 10
clip = "synthetic"
"""


def test_render_writes_streams_truth_and_annotations(tmp_path: Path) -> None:
    scene = tmp_path / "scene.toml"
    scene.write_text(SCENE)
    truth_path = render_scene(scene, tmp_path / "out", start_utc_ns=10**18, progress=False)
    truth = json.loads(truth_path.read_text())
    gunshot = truth["events"][0]
    c = speed_of_sound_m_per_s(20.0)
    assert gunshot["arrival_time_ns"]["b"] - gunshot["arrival_time_ns"]["a"] == pytest.approx(
        (170 - 34.3 - 34.3) / c * 1e9, abs=1
    )
    assert gunshot["emission_time_ns"] == 10**18 + 500_000_000
    audio, rate = soundfile.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert rate == 16000 and audio.size == 48000
    first_loud = int(np.argmax(np.abs(audio) > 0.01))
    assert first_loud / rate == pytest.approx(gunshot["arrival_time_s"]["a"] + gunshot["onset_s"], abs=0.002)
    rows = (tmp_path / "out" / "annotations.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["a.wav", "b.wav"]  # the negative event is not annotated
    assert all(r.split("\t")[3] == "gunshot" for r in rows)


def test_render_is_a_cli_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = tmp_path / "scene.toml"
    scene.write_text(SCENE)
    assert cli(["render-scene", str(scene), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "truth.json" in capsys.readouterr().out
    assert cli(["render-scene", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "o")]) == 2
