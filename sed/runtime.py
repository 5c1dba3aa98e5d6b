"""What every long-running sed process does the same way: logging and clean shutdown."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sed.config import load_config
from sed.config.base import Section

C = TypeVar("C", bound=Section)


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


def start_service(
    argv: list[str],
    *,
    prog: str,
    description: str | None,
    kind: type[C],
    config_help: str,
    component: Callable[[C], str],
) -> tuple[C, threading.Event]:
    """The start of every long-running command: ``--config`` and ``--log-level``, the config
    loaded and validated, logging named after the component, SIGTERM/SIGINT wired to ``stop``.

    Returns
    -------
    config, stop
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help=config_help)
    parser.add_argument(
        "--log-level", default=os.environ.get("SED_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING … (default INFO)"
    )
    args = parser.parse_args(argv)
    config = load_config(args.config, kind)
    setup_logging(component(config), level=args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    return config, stop


__all__ = ["setup_logging", "start_service", "stop_on_signals"]
