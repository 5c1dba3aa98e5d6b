"""The in-process API server: a port in use is a start-up error, not a dead worker."""

from __future__ import annotations

import socket

import pytest

from sed.api.app import create_app
from sed.api.server import ApiServer, exit_code
from sed.config import ServerConfig
from sed.store import Store


def test_a_port_in_use_fails_the_start_with_one_clear_error_and_no_worker_death(
    config: ServerConfig, store: Store
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(create_app(config, store), host="127.0.0.1", port=port)
        with pytest.raises(OSError, match=rf"could not listen on 127.0.0.1:{port} \(is the port in use\?\)"):
            server.start()
        server.stop()
    assert not server.supervisor.failed.is_set() and exit_code(server.supervisor) == 0


def test_a_served_api_that_loses_a_worker_exits_1(config: ServerConfig, store: Store) -> None:
    app = create_app(config, store)
    server = ApiServer(app, host="127.0.0.1", port=0)
    server.start()
    try:
        assert {s.name for s in server.supervisor.statuses()} == {"live-feed", "webhooks", "retention", "http"}

        def fault() -> None:
            raise RuntimeError("injected")

        app.state.retention.liveness.beat = fault  # the next turn of its loop raises
        assert server.supervisor.failed.wait(timeout=5)
    finally:
        server.stop()
    assert exit_code(server.supervisor) == 1
