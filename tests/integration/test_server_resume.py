"""A fusion node that stopped after storing (and acknowledging) a detection, before any incident held it,
associates it when it starts again: the sensor will not resend it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.fuzz_link import valid_detection
from sed.store import Store
from tests.integration.sensor_support import wait_for
from tests.integration.wire_fuzz_support import NodeThread

pytestmark = pytest.mark.slow

NS_PER_DAY = 86_400 * 10**9


def test_a_restarted_node_resumes_the_recent_stored_detections_no_incident_holds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fusion.sqlite'}"
    store = Store(url)
    now_ns = time.time_ns()
    store.add_detection(valid_detection("pole-1", "pole-1:acked-before-the-stop"), received_at_ns=now_ns - 10**9)
    store.add_detection(valid_detection("pole-1", "pole-1:last-week"), received_at_ns=now_ns - 7 * NS_PER_DAY)
    store.close()

    node = NodeThread(tmp_path, url=url).start()
    try:
        (incident,) = wait_for(node.store.list_incidents, timeout_s=10, what="the resumed detection's incident")
        assert incident.detection_ids == ["pole-1:acked-before-the-stop"] and incident.position is None
        time.sleep(0.5)
        assert len(node.store.list_incidents()) == 1  # a week-old leftover is not alerted on now
    finally:
        node.close()
