"""The demo's scenario and its scoring, without running processes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sed.capture.scene import ground_truth
from sed.config import SceneConfig, load_config, parse_config
from sed.demo import _evaluate, _on_screen_ns, _sound_onsets_s, default_scene

DEPLOY_SCENE = Path(__file__).resolve().parents[2] / "deploy" / "scene.toml"


def test_the_documented_example_scene_is_the_demo_default() -> None:
    assert tomllib.loads(DEPLOY_SCENE.read_text()) == default_scene()
    assert isinstance(load_config(DEPLOY_SCENE), SceneConfig)


def test_scoring_matches_incidents_to_events_by_time_and_reports_error_and_latency() -> None:
    scene = parse_config(default_scene(duration_s=30.0), SceneConfig).scene
    truth = ground_truth(scene)
    onsets = [[0.1] for _ in truth]
    start_ns = 1_000_000_000_000
    gunshot, scream = truth[0], truth[1]
    incidents = [
        {  # the first gunshot, located 3 m off, right class
            "incident_id": "a",
            "label": "gunshot",
            "origin_time_ns": start_ns + int((gunshot.emission_time_s + 0.1) * 1e9),
            "position": {"x_m": gunshot.position_m[0] + 3.0, "y_m": gunshot.position_m[1]},
            "uncertainty_m": 2.0,
            "sensor_ids": ["pole-01", "pole-02", "pole-03"],
        },
        {  # the scream, heard but not located, called a gunshot
            "incident_id": "b",
            "label": "gunshot",
            "origin_time_ns": start_ns + int((scream.emission_time_s + 0.4) * 1e9),
            "position": None,
            "uncertainty_m": None,
            "sensor_ids": ["pole-05"],
        },
    ]
    first_seen = {"a": incidents[0]["origin_time_ns"] + 2_000_000_000, "b": incidents[1]["origin_time_ns"] + 10**9}
    summary, rows = _evaluate(truth, onsets, start_ns, incidents, first_seen)
    # Latency runs from the sound reaching the first pole, not from its emission.
    to_first_pole_s = min(gunshot.arrival_time_s.values()) - gunshot.emission_time_s
    assert to_first_pole_s > 0.05
    assert summary == {
        "scripted": 4,
        "alerted": 2,
        "classes_correct": 1,
        "median_error_m": 3.0,
        "max_latency_s": round(2.0 - to_first_pole_s, 2),
    }
    assert rows[2]["incident"] is None and rows[3]["incident"] is None


def test_sound_onsets_are_found_inside_each_played_clip() -> None:
    scene = parse_config(default_scene(), SceneConfig).scene
    truth = ground_truth(scene)
    for onsets_s, event in zip(_sound_onsets_s(scene, truth), truth, strict=True):
        assert onsets_s == sorted(onsets_s)
        assert 0.0 <= onsets_s[0] < event.duration_s <= scene.events[0].max_duration_s + 1e-9


def test_an_incident_was_on_screen_since_the_first_provisional_incident_merged_into_it() -> None:
    first_seen = {"located": 5_000, "early": 1_000, "earlier": 500, "other": 700}
    merged_into = {"early": "located", "earlier": "early"}  # earlier -> early -> located
    on_screen = _on_screen_ns(first_seen, merged_into)
    assert on_screen["located"] == 500 and on_screen["other"] == 700
