"""What every long-running sed process does the same way: logging and clean shutdown."""

from __future__ import annotations

import logging
import signal
import sys
import threading


def setup_logging(component: str, *, level: str = "INFO") -> None:
    """One-line records naming the component (``sensor pole-017``, ``fusion``, ``api``)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s [{component}] %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT so the process can flush and close before exiting."""

    def handler(signum: int, _frame: object) -> None:
        logging.getLogger("sed").info("signal %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


__all__ = ["setup_logging", "stop_on_signals"]
