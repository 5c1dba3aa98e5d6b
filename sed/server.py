"""Fusion node and API in one process: ``sed server --config server.toml``.

The fusion node runs in a thread and hands each committed incident straight to the API's
live feed (no socket in between); the API serves REST, live push, webhooks and the dashboard.
Every thread is supervised (:mod:`sed.supervise`): ``/healthz`` reports each, and when one
dies for any reason the process stops and exits 1, so systemd restarts it instead of an
API that answers while no alert is raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sed import wire
from sed.api.app import create_app
from sed.api.server import ApiServer, exit_code
from sed.config import ServerConfig
from sed.fusion import node
from sed.runtime import start_service
from sed.store import Store
from sed.supervise import Liveness, Supervisor

log = logging.getLogger("sed.server")


class Server:
    """Starts the fusion node (thread) and the API (uvicorn thread) on one store; stops both.

    Attributes
    ----------
    api_url : str
        Base URL of the API, after :meth:`start`.
    fusion_endpoint : str
        Endpoint sensors connect to, after :meth:`start`.
    """

    def __init__(self, config: ServerConfig, *, on_incident: Callable[[wire.Incident], None] | None = None) -> None:
        self.config = config
        self.store = Store(config.store.url)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.app = create_app(config, self.store)
        self._on_incident = on_incident
        #: The fusion thread's health; it dies (and the process with it) if the node's loop ends.
        self.fusion_liveness = Liveness("fusion")
        #: The fusion node's association worker; its problems say when association is overloaded.
        self.association_liveness = Liveness("association")
        self._api = ApiServer(self.app, host=config.api.host, port=config.api.port)
        #: Every worker of the process: the fusion node, the API's and the HTTP server.
        self.supervisor: Supervisor = self._api.supervisor
        self.supervisor.watch(self.fusion_liveness, self.association_liveness)
        self.api_url = ""
        self.fusion_endpoint = ""

    def _run_fusion(self) -> None:
        def ready(endpoint: str) -> None:
            self.fusion_endpoint = endpoint
            self._ready.set()

        try:
            node.run(
                self.config,
                self._stop,
                store=self.store,
                on_incident=self._announce,
                on_ready=ready,
                liveness=self.fusion_liveness,
                association_liveness=self.association_liveness,
                registry=self.app.state.metrics.registry,
            )
        except BaseException as exc:
            if not self._ready.is_set():  # it never listened: start() raises it (one line from the CLI)
                self._failure = exc
                self.fusion_liveness.stopping()
                return
            raise  # a death: the supervisor logs it and the process stops
        finally:
            self._ready.set()

    def _announce(self, incident: wire.Incident) -> None:
        """Committed by the fusion node: push it live (and to webhooks), then tell the embedder."""
        self.app.state.feed.announce_incident(incident)
        if self._on_incident is not None:
            self._on_incident(incident)

    def start(self) -> None:
        self.fusion_liveness.start(self._run_fusion, thread_name="sed-fusion")
        self._ready.wait(timeout=30.0)
        if self._failure is not None:
            raise self._failure
        self.api_url = self._api.start()

    def stop(self) -> None:
        self.fusion_liveness.stopping()
        self._api.stop()
        self._stop.set()
        if (thread := self.fusion_liveness.thread) is not None:
            thread.join(timeout=10.0)
        self.store.close()


def main(argv: list[str], *, prog: str) -> int:
    config, stop = start_service(
        argv,
        prog=prog,
        description=__doc__,
        kind=ServerConfig,
        config_help="server TOML ([fusion], [api], [store], [site])",
        component=lambda _: "server",
    )
    server = Server(config)
    server.supervisor.on_failure(stop.set)
    try:
        server.start()
        print(f"fusion node on {server.fusion_endpoint}; API on {server.api_url}", flush=True)
        stop.wait()
    finally:
        server.stop()
    return exit_code(server.supervisor)


__all__ = ["Server"]
