"""What every long-running sed process does the same way: help text, start-up checks, logging,
clean shutdown.

The console script is ``sedcity`` (:data:`CONSOLE_SCRIPT`; ``sed`` would shadow GNU sed on the
``PATH``); ``python -m sed`` runs the same thing.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from sed.errors import ConfigError

if TYPE_CHECKING:
    from sed.config.base import Section

# sed.config (pydantic, numpy) is imported where it is used: ``sedcity --help`` imports this
# module and must answer at once, and ``bench detect`` limits BLAS threads before numpy loads.
C = TypeVar("C", bound="Section")

#: Name of the console script (``[project.scripts]`` in pyproject.toml).
CONSOLE_SCRIPT = "sedcity"

# Sphinx roles (:mod:`sed.capture`, :class:`~sed.models.StreamingDetector`) and inline literals
# (``sed sensor``) read as noise in a terminal; ``--help`` shows their plain text.
_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
# Docstrings name commands as ``sed <command>``: what a user types is the console script.
_COMMAND = re.compile(
    r"\bsed (?=(?:sensor|fusion|api|server|users|demo|keys|bench|validate-config|render-scene|train)\b)"
)


def plain_help(text: str | None) -> str | None:
    """A docstring as ``--help`` shows it: Sphinx roles and literals as plain text, commands
    under their console-script name.

    Examples
    --------
    >>> plain_help("Run by ``sed sensor``; see :class:`~sed.models.StreamingDetector`.")
    'Run by sedcity sensor; see StreamingDetector.'
    """
    if text is None:
        return None

    def role(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        # Sphinx shows ":class:`~a.b.C`" as "C"; keep that reading.
        return target.rsplit(".", 1)[-1] if "`~" in match.group(0) else target

    text = _LITERAL.sub(r"\1", _ROLE.sub(role, text))
    return _COMMAND.sub(f"{CONSOLE_SCRIPT} ", text)


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose description is :func:`plain_help` of a docstring and whose
    errors are one line (``sedcity bench detect: argument --chunk-s: 'nan'; expected …``), exit code 2."""

    def __init__(self, *, prog: str, description: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawTextHelpFormatter)
        super().__init__(prog=prog, description=plain_help(description), **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argument that must be a whole number > 0 (``type=`` of :class:`CommandParser` options)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a whole number > 0")
    return value


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
    loaded and validated, what the process needs at start checked (keys, free ports, folders,
    the database: see :func:`sed.validate.environment_problems`), logging named after the
    component, SIGTERM/SIGINT wired to ``stop``.

    The first word of ``component(config)`` (``sensor``, ``fusion``, ``api``, ``server``)
    says which checks apply: a separate ``api`` does not bind the fusion node's endpoint.

    Returns
    -------
    config, stop

    Raises
    ------
    ConfigError
        One line per problem, each naming the file, the key and the value.
    """
    parser = CommandParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, required=True, help=config_help)
    parser.add_argument(
        "--log-level", default=os.environ.get("SED_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING … (default INFO)"
    )
    args = parser.parse_args(argv)
    if args.log_level.upper() not in logging.getLevelNamesMapping():
        raise ConfigError(f"--log-level {args.log_level!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    from sed.config import load_config
    from sed.validate import environment_problems

    config = load_config(args.config, kind)
    name = component(config)
    problems = environment_problems(config, source=str(args.config), role=name.split()[0])
    if problems:
        raise ConfigError("\n".join(problems))
    setup_logging(name, level=args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    return config, stop


def startup_error_types() -> tuple[type[BaseException], ...]:
    """What the operating system, ZeroMQ or the database raise when a process cannot start.

    Only libraries already imported can have raised, so this imports none (``--help`` stays fast).
    """
    types: list[type[BaseException]] = [OSError]
    zmq = sys.modules.get("zmq")
    if zmq is not None:
        types.append(zmq.ZMQError)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        types.append(sqlalchemy_exc.OperationalError)
    return tuple(types)


__all__ = [
    "CONSOLE_SCRIPT",
    "CommandParser",
    "plain_help",
    "positive_int",
    "setup_logging",
    "start_service",
    "startup_error_types",
    "stop_on_signals",
]
