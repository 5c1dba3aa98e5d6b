"""A real fusion node in a thread of the test process, for the crash-case and fuzz tests.

:class:`NodeThread` runs :func:`sed.fusion.node.run` (the same loop ``sed fusion`` and
``sed server`` run) on a temporary store with freshly made CURVE keys, and hands out
:class:`~benchmarks.fuzz_link.SensorLink` s that speak as a registered sensor. Whatever
the node raises is kept in :attr:`NodeThread.failure`, so a test can say *which* frame
killed it instead of timing out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.fuzz_link import SensorLink
from sed.config import ServerConfig, parse_config
from sed.fusion import node
from sed.keys import NetworkKeys
from sed.store import Store
from sed.store import tables as t
from sed.supervise import Liveness
from tests.databases import database_url

SENSORS = ("pole-1", "pole-2")
UNREGISTERED = ("rogue",)

log = logging.getLogger("tests.wire_fuzz")


def store_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A fresh database URL on ``backend`` and a callable that drops it afterwards (:mod:`tests.databases`)."""
    stack = contextlib.ExitStack()
    return stack.enter_context(database_url(backend, tmp_path)), stack.close


class NodeThread:
    """A fusion node serving registered sensors ``pole-1`` and ``pole-2`` (and refusing ``rogue``).

    Parameters
    ----------
    workdir : Path
        Keys and the SQLite store go here.
    url : str, optional
        Store URL (default: SQLite in ``workdir``).
    site : dict, optional
        The config's ``[site]`` section (default: its defaults).
    """

    def __init__(self, workdir: Path, *, url: str | None = None, site: dict[str, Any] | None = None) -> None:
        self.keys = NetworkKeys.create(workdir, SENSORS, unregistered=UNREGISTERED)
        self.config: ServerConfig = parse_config(
            {
                "site": site or {},
                "fusion": {
                    "bind_endpoint": "tcp://127.0.0.1:0",
                    "secret_key_file": str(self.keys.fusion_secret_key_file),
                    "authorized_keys_dir": str(self.keys.authorized_keys_dir),
                    "association_wait_s": 0.2,
                },
                "store": {"url": url or f"sqlite:///{workdir / 'fusion.sqlite'}"},
            },
            ServerConfig,
        )
        self.store = Store(self.config.store.url)
        self.endpoint = ""
        self.failure: BaseException | None = None
        #: The node's health record: its ``problems`` list the key files it could not read.
        self.liveness = Liveness("fusion")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._links: list[SensorLink] = []
        self.thread = threading.Thread(target=self._run, name="fuzzed-fusion-node", daemon=True)

    def _run(self) -> None:
        def ready(endpoint: str) -> None:
            self.endpoint = endpoint
            self._ready.set()

        try:
            node.run(self.config, self._stop, store=self.store, on_ready=ready, liveness=self.liveness)
        except BaseException as exc:  # kept for the test to report; the node must never get here
            self.failure = exc
            log.exception("fusion node died")
        finally:
            self._ready.set()

    def start(self) -> NodeThread:
        self.thread.start()
        assert self._ready.wait(timeout=30), "fusion node did not start within 30 s"
        assert self.failure is None, f"fusion node failed to start: {self.failure!r}"
        return self

    def alive(self) -> bool:
        return self.thread.is_alive() and self.failure is None

    def link(self, sensor_id: str = SENSORS[0]) -> SensorLink:
        """A new connection speaking with ``sensor_id`` 's key (closed by :meth:`close`)."""
        link = SensorLink(
            endpoint=self.endpoint,
            secret_key_file=self.keys.sensor_secret_key_files[sensor_id],
            server_public_key_file=self.keys.fusion_public_key_file,
        )
        self._links.append(link)
        return link

    def stored(self, detection_id: str) -> int:
        """How many rows the store holds for this detection id."""
        query = sa.select(sa.func.count()).select_from(t.detections).where(t.detections.c.detection_id == detection_id)
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        for link in self._links:
            link.close()
        self._stop.set()
        self.thread.join(timeout=15)
        self.store.close()


__all__ = ["SENSORS", "NodeThread", "store_url"]
