"""An OpenAPI-driven fuzzer (schemathesis) over every route of ``create_app``: zero 5xx.

Each run builds the app on a store seeded with incidents, detections, a clip, sensors and
a webhook rule, signs in as an admin or an operator, and sends every operation of the
app's own OpenAPI schema valid (positive) and schema-violating (negative) requests:
out-of-range integers, NUL bytes, wrong types, missing fields. Every answer must be below
500 and, where the schema documents its status, match the documented response schema.
Four runs: {admin, operator} x {SQLite, PostgreSQL} (PostgreSQL as in
``tests/unit/store``: ``SED_TEST_POSTGRES_URL``, skipped without it).

Examples per operation and generation mode: ``SED_FUZZ_EXAMPLES`` (default 20, which
keeps the four runs under a minute or two); set it higher for a long run, e.g.
``SED_FUZZ_EXAMPLES=500 pytest tests/integration/test_api_fuzz.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from sed import wire
from sed.api.app import create_app
from sed.api.auth import hash_password, issue_token
from sed.capture.pipeline import encode_flac
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.store import Area, Role, Store
from tests.databases import BACKENDS, database_url
from tests.unit.store.test_store import detection, incident

#: Examples per operation and generation mode.
EXAMPLES = int(os.environ.get("SED_FUZZ_EXAMPLES", "20"))
#: Operations left out, with the reason.
EXCLUDED = {
    # streams until the client leaves; its bounds (queue, keepalive, close) are in tests/unit/api/test_live.py
    ("GET", "/api/live"): "server-sent events never end",
}
PASSWORD = "fuzzing passphrase"
_HASH = hash_password(PASSWORD)


@pytest.fixture(params=BACKENDS)
def fuzzed_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Store]]:
    keys = NetworkKeys.create(tmp_path, ["pole-1", "pole-2", "pole-3"])
    with database_url(request.param, tmp_path) as db_url:
        config = parse_config(
            {
                "site": {"origin_lat_deg": 49.7475, "origin_lon_deg": 13.3776},
                "fusion": {
                    "secret_key_file": str(keys.fusion_secret_key_file),
                    "authorized_keys_dir": str(keys.authorized_keys_dir),
                },
                "store": {"url": db_url},
            },
            ServerConfig,
        )
        store = Store(config.store.url)
        _seed(store)
        yield create_app(config, store), store
        store.close()


def _seed(store: Store) -> None:
    """Something behind every list: incidents with detections, a clip, sensors, a rule, users."""
    now_ns = time.time_ns()
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=now_ns)
        store.touch_sensor(sensor, wire.Position(x_m=10.0 * n, y_m=0), seen_at_ns=now_ns)
    store.save_incident(incident("i1", ["pole-1:0", "pole-2:1", "pole-3:2"], origin_ns=100), updated_at_ns=now_ns)
    audio = (0.3 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)
    clip = wire.EvidenceClip(
        detection_id="pole-1:0",
        sensor_id="pole-1",
        start_time_ns=1,
        sample_rate_hz=16000,
        data=encode_flac(audio, sample_rate_hz=16000),
    )
    store.add_clip(clip, received_at_ns=now_ns)
    store.webhooks.add_rule(
        name="north",
        url="https://hooks.example/sed",
        labels=(wire.Label.GUNSHOT,),
        min_score=0.5,
        area=Area(x_min_m=None, x_max_m=None, y_min_m=0.0, y_max_m=None),
        secret="a webhook signing key",
        now_ns=now_ns,
    )
    store.accounts.add_user("alice", password_hash=_HASH, role=Role.ADMIN, now_ns=now_ns)
    store.accounts.add_user("oscar", password_hash=_HASH, role=Role.OPERATOR, now_ns=now_ns)


def _token(store: Store, username: str) -> dict[str, str]:
    token, _ = issue_token(store, username, label="fuzz", now_ns=time.time_ns(), ttl_s=3600)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("username", ["alice", "oscar"], ids=["admin", "operator"])
def test_no_route_answers_a_server_error(fuzzed_app: tuple[Any, Store], username: str) -> None:
    app, store = fuzzed_app
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    headers = _token(store, username)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        if operation.path == "/api/auth/logout":
            # logging out revokes the token it carries: give each logout a token of its own
            n, failure = _fuzz(operation, lambda: _token(store, username))
        else:
            n, failure = _fuzz(operation, lambda: headers)
        calls += n
        if failure is not None:
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    print(f"api fuzz as {username}: {calls} requests, {len(failures)} failing operations")
    assert not failures, "\n\n".join(failures)
    assert calls >= EXAMPLES * 20  # every operation ran (some examples repeat, so not all 2 x EXAMPLES each)


def _fuzz(operation: Any, headers: Callable[[], dict[str, str]]) -> tuple[int, str | None]:
    """Send one operation's positive and negative examples; (requests sent, the first failure or None)."""
    calls = 0
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @hypothesis.settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],  # report the first failing example as is; shrinking costs minutes
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(headers=headers())
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    try:
        fuzz()
    except Exception as exc:
        return calls, str(exc)
    return calls, None
