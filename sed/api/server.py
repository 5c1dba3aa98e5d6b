"""Serving the API: ``sed api --config server.toml`` and an in-process server for ``sed server``/``sed demo``.

A separate ``sed api`` follows a separate ``sed fusion`` over ZeroMQ for live push when
both configs set ``api.incident_feed_endpoint``; without it, clients see new incidents only
when they reload.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from sed.api.app import create_app
from sed.config import ServerConfig
from sed.runtime import start_service
from sed.store import Store

#: Longest wait for uvicorn to bind its socket, s.
STARTUP_TIMEOUT_S = 20.0
#: Longest wait for open requests when stopping, s.
GRACEFUL_SHUTDOWN_S = 5.0


class ApiServer:
    """uvicorn in a background thread, with a deterministic start and stop.

    Parameters
    ----------
    app : FastAPI
    host : str
    port : int
        0 picks a free port; :attr:`url` tells which after :meth:`start`.
    """

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        self._app = app
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="sed-api", daemon=True)
        self.url = ""

    def start(self) -> str:
        """Start serving; returns the base URL once the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start (is the port in use?)")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        return self.url

    def stop(self) -> None:
        feed = getattr(self._app.state, "feed", None)
        if feed is not None:
            feed.close()  # ends the live streams, which would otherwise hold the shutdown open
        self._server.should_exit = True
        self._thread.join(timeout=10.0)


def main(argv: list[str], *, prog: str) -> int:
    config, stop = start_service(
        argv,
        prog=prog,
        description=__doc__,
        kind=ServerConfig,
        config_help="server TOML ([api], [store], [site] …)",
        component=lambda _: "api",
    )
    store = Store(config.store.url)
    server = ApiServer(create_app(config, store, follow_fusion=True), host=config.api.host, port=config.api.port)
    try:
        print(f"API listening on {server.start()}", flush=True)
        stop.wait()
    finally:
        server.stop()
        store.close()
    return 0


__all__ = ["ApiServer"]
