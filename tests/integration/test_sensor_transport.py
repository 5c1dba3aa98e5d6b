"""Nothing is lost between a sensor and a fusion node that crashes, goes away, or refuses it.

Real processes over real sockets: ``sed fusion`` with its SQLite store, and a sensor
process that streams detections through the real outbox and sender
(:mod:`tests.integration.sensor_support`). The fusion node is killed for real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.sensor_support import FusionNode, start_load_sensor, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def fusion(tmp_path: Path, curve_keys: Callable[..., dict[str, Path]]) -> Iterator[tuple[FusionNode, dict[str, Path]]]:
    keys = curve_keys("pole-1", unregistered=("rogue",))
    node = FusionNode(tmp_path, keys)
    node.start()
    yield node, keys
    node.stop()


def _finish(process: subprocess.Popen, timeout_s: float) -> tuple[int, dict]:
    out, err = process.communicate(timeout=timeout_s)
    assert out.strip(), err
    return process.returncode, json.loads(out.strip().splitlines()[-1])


def test_sigkilled_fusion_node_still_stores_all_1000_detections_exactly_once(fusion, tmp_path: Path) -> None:
    node, keys = fusion
    sensor = start_load_sensor(tmp_path, keys, "pole-1", node.endpoint, count=1000, rate=400.0, wait_s=40.0)
    stored_at_kill = len(
        wait_for(lambda: len(node.detection_ids()) >= 250 and node.detection_ids(), timeout_s=30, what="250 stored")
    )
    node.kill(signal.SIGKILL)
    time.sleep(1.0)  # the sensor keeps detecting into its outbox meanwhile
    node.start()
    code, stats = _finish(sensor, timeout_s=60)
    assert code == 0, stats
    ids = node.detection_ids()
    assert stored_at_kill < 1000  # the node really died mid-stream
    assert len(ids) == 1000
    assert sorted(ids) == [f"pole-1:{n:06d}" for n in range(1000)]
    # Resends happened (messages in flight when the node died were sent again) and each
    # detection is stored once, whatever the number of copies that reached the node.
    assert stats["sent"] >= 1000 and stats["acked"] >= 1000
    assert node.query("SELECT COUNT(DISTINCT detection_id), COUNT(*) FROM detections") == [(1000, 1000)]


def test_link_cut_for_seconds_everything_arrives_soon_after_it_returns(fusion, tmp_path: Path) -> None:
    node, keys = fusion
    sensor = start_load_sensor(tmp_path, keys, "pole-1", node.endpoint, count=300, rate=60.0, wait_s=40.0)
    wait_for(lambda: len(node.detection_ids()) >= 30, timeout_s=30, what="the first detections")
    node.kill(signal.SIGTERM)
    time.sleep(4.0)  # resends back off: 0.2, 0.4, 0.8, 1.6, 3.2 s …
    stored_while_down = len(node.detection_ids())
    node.start()
    back_at = time.monotonic()
    wait_for(lambda: len(node.detection_ids()) == 300, timeout_s=30, what="all 300 detections")
    caught_up_s = time.monotonic() - back_at
    code, stats = _finish(sensor, timeout_s=30)
    assert code == 0, stats
    assert stored_while_down < 300
    assert sorted(node.detection_ids()) == [f"pole-1:{n:06d}" for n in range(300)]
    # The whole backlog is resent once the node answers again (about 2.6 s here, most of it
    # ZeroMQ's reconnect interval, capped at 2 s), not at each message's backed-off schedule.
    assert caught_up_s < 8.0


def test_sensor_with_an_unregistered_key_is_refused_and_nothing_is_stored(fusion, tmp_path: Path) -> None:
    node, keys = fusion
    rogue = start_load_sensor(tmp_path, keys, "rogue", node.endpoint, count=20, rate=100.0, wait_s=3.0)
    code, stats = _finish(rogue, timeout_s=30)
    assert code == 1  # never acknowledged: everything is still in its outbox
    assert stats["depth"] == 20 and stats["acked"] == 0
    assert node.detection_ids() == []
    assert node.query("SELECT sensor_id FROM sensors") == []  # not even its heartbeats
    assert "refused CURVE key" in node.log()
