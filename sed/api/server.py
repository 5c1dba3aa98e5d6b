"""Serving the API: ``sed api --config server.toml`` and an in-process server for ``sed server``/``sed demo``.

A separate ``sed api`` follows a separate ``sed fusion`` over ZeroMQ for live push when
both configs set ``api.incident_feed_endpoint``; without it, clients see new incidents only
when they reload. When any worker thread dies (the HTTP server, the live feed, webhooks,
retention, the feed subscriber), the process stops and exits 1, so systemd restarts it.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

from sed.api.app import create_app
from sed.config import ServerConfig
from sed.runtime import start_service
from sed.store import Store
from sed.supervise import Liveness, Supervisor

log = logging.getLogger("sed.api")

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
        self._thread: threading.Thread | None = None
        #: The HTTP server's thread: it has no loop of its own to beat, so it never stalls.
        self.liveness = Liveness("http", stall_after_s=None)
        #: Every worker of the app and this server; ``failed`` is set when one dies.
        self.supervisor: Supervisor = app.state.supervisor
        self.supervisor.watch(self.liveness)
        self.url = ""

    def start(self) -> str:
        """Start serving; returns the base URL once the socket accepts connections."""
        self._thread = self.liveness.start(self._serve, thread_name="sed-api")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                config = self._server.config
                raise OSError(f"the API server could not listen on {config.host}:{config.port} (is the port in use?)")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        return self.url

    def _serve(self) -> None:
        try:
            self._server.run()
        except SystemExit:  # uvicorn exits when it cannot bind (it logged why)
            if self._server.started:
                raise  # a death once serving
            self.liveness.stopping()  # it never served: start() raises, no worker died

    def stop(self) -> None:
        self.liveness.stopping()
        feed = getattr(self._app.state, "feed", None)
        if feed is not None:
            feed.close()  # ends the live streams, which would otherwise hold the shutdown open
        self._server.should_exit = True
        if self._thread is not None:
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
    server.supervisor.on_failure(stop.set)
    try:
        print(f"API listening on {server.start()}", flush=True)
        stop.wait()
    finally:
        server.stop()
        store.close()
    return exit_code(server.supervisor)


def exit_code(supervisor: Supervisor) -> int:
    """1 when a worker died (systemd's ``Restart=on-failure`` starts the process again), else 0."""
    if supervisor.failed.is_set():
        worker = supervisor.first_death
        log.critical("exiting: worker %s died (%s)", worker.name if worker else "?", worker.error if worker else "")
        return 1
    return 0


__all__ = ["ApiServer", "exit_code"]
