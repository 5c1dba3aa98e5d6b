"""Exports: GeoJSON of located incidents, and the reviewed-clip corpus that `sed bench detect` reads."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import soundfile
from fastapi.testclient import TestClient

from sed import wire
from sed.api.app import create_app
from sed.api.retention import expire
from sed.capture.pipeline import encode_flac
from sed.config import ServerConfig
from sed.models.train.data import read_manifest
from sed.store import ReviewAction, Store
from tests.unit.store.test_store import detection, incident


def _reviewed_scene(store: Store) -> None:
    """Three clips received just now, two incidents reviewed, one not.

    Received *now*, as a server stores them: the app's clip retention job runs in a thread
    of its own at start-up, and clips stamped near the epoch would be older than any
    retention period, so whether they survived would depend on thread scheduling.
    """
    received_ns = time.time_ns()
    tone = (0.2 * np.sin(np.arange(8000) / 3)).astype(np.float32)
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=received_ns)
        clip = encode_flac(tone * (n + 1) / 3, sample_rate_hz=16000)
        store.add_clip(
            wire.EvidenceClip(
                detection_id=f"{sensor}:{n}", sensor_id=sensor, start_time_ns=1, sample_rate_hz=16000, data=clip
            ),
            received_at_ns=received_ns,
        )
    store.save_incident(incident("shot", ["pole-1:0", "pole-2:1"], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("bang", ["pole-3:2"], origin_ns=200), updated_at_ns=1)
    store.save_incident(incident("unreviewed", [], origin_ns=300), updated_at_ns=1)
    store.review_incident("shot", username="oscar", action=ReviewAction.CONFIRM, text=None, at_ns=5)
    store.review_incident("bang", username="oscar", action=ReviewAction.FALSE_ALARM, text="a bus door", at_ns=6)


def test_corpus_is_a_manifest_bench_detect_reads_with_the_clips_beside_it(
    client: TestClient, store: Store, config: ServerConfig, admin: dict[str, str], tmp_path: Path
) -> None:
    _reviewed_scene(store)
    # Whenever the app's retention thread runs, before or after the export, it keeps these clips.
    assert expire(store, config, now_ns=time.time_ns()) == 0
    response = client.get("/api/export/corpus.zip", headers=admin)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path)
    clips = read_manifest(tmp_path / "corpus" / "MANIFEST.csv")
    assert sorted((c.label, c.subclass, c.group) for c in clips) == [
        ("gunshot", "", "shot"),
        ("gunshot", "", "shot"),
        ("negative", "false_alarm_gunshot", "bang"),
    ]
    assert {c.source for c in clips} == {"pole-1", "pole-2", "pole-3"}  # the file name starts with the sensor
    for clip in clips:
        audio, rate = soundfile.read(tmp_path / "corpus" / clip.path)
        assert rate == 16000 and audio.shape == (8000,)
    manifest = (tmp_path / "corpus" / "MANIFEST.csv").read_text()
    assert "a bus door" in manifest and "unreviewed" not in manifest
    exported = store.accounts.audit_entries(action="clip.export")
    assert sorted(e.target for e in exported) == ["pole-1:0", "pole-2:1", "pole-3:2"]
    assert {e.username for e in exported} == {"alice"}


def test_geojson_has_wgs84_points_and_needs_a_geodetic_origin(
    client: TestClient, store: Store, operator: dict[str, str], make_config
) -> None:
    _reviewed_scene(store)
    response = client.get("/api/export/incidents.geojson", headers=operator, params={"status": ["confirmed", "new"]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert [f["id"] for f in collection["features"]] == ["unreviewed", "shot"]
    lon, lat = collection["features"][1]["geometry"]["coordinates"]
    assert abs(lat - 49.7475) < 1e-3 and abs(lon - 13.3776) < 1e-3
    assert collection["features"][1]["properties"]["status"] == "confirmed"
    no_origin = make_config(site={"origin_lat_deg": None, "origin_lon_deg": None})
    with TestClient(create_app(no_origin, store)) as local:
        refused = local.get("/api/export/incidents.geojson", headers=operator)
    assert refused.status_code == 409 and "origin_lat_deg" in refused.json()["detail"]
