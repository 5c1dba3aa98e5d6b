"""The ``sedcity`` console script (also ``python -m sed``).

It is not called ``sed``: that would shadow GNU sed for anyone with the virtualenv's ``bin/``
on the ``PATH``. Commands are dispatched lazily: ``sedcity bench localize …`` imports only
:mod:`sed.bench.localize` and hands it the remaining arguments, so a sensor on a small CPU
never imports the API stack, and ``sedcity --help`` answers instantly. Every command module
exposes ``main(argv, *, prog) -> int`` and owns its own argument parser.

Every problem with what the user gave (a file, a key, a value, a port in use, a database
that does not answer) ends in one line per problem on standard error and exit code 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from sed import __version__
from sed.errors import SedError
from sed.runtime import CONSOLE_SCRIPT, startup_error_types

# name -> (module, one-line summary); a dict value is a command group.
COMMANDS: dict[str, tuple[str, str] | dict[str, tuple[str, str]]] = {
    "demo": ("sed.demo", "simulate a city block end to end and print what the operations centre saw"),
    "sensor": ("sed.capture.daemon", "run a pole sensor daemon (microphone, file or scene source)"),
    "fusion": ("sed.fusion.node", "run the fusion node: receive detections, locate, store incidents"),
    "api": ("sed.api.server", "run the operations-centre API and dashboard"),
    "server": ("sed.server", "run fusion node and API in one process"),
    "users": ("sed.api.users_cli", "add, list and remove operations-centre users; issue API tokens"),
    "render-scene": ("sed.capture.render", "write a simulated scene's sensor streams, ground truth and annotations"),
    "keys": ("sed.keys", "generate CURVE key pairs for sensors and the fusion node"),
    "validate-config": ("sed.validate", "check config files and what starting with them needs; print every problem"),
    "train": ("sed.models.train", "train the event classifier on the shared clips (needs the 'train' extra)"),
    "bench": {
        "detect": ("sed.bench.detect", "score detectors on a clip manifest or annotated recordings"),
        "localize": ("sed.bench.localize", "score localisation on the Pittsburgh live-fire recordings"),
        "snr-curve": ("sed.bench.snr_curve", "the detector's P(detect) per class at stepped SNRs (for planning)"),
    },
    "coverage": {
        "plan": ("sed.coverage.plan", "plan sensor coverage of a district; pick the next sites to mount"),
        "validate": ("sed.coverage.validate", "check the coverage model against ShotSpotter's Pittsburgh test"),
    },
}


def _usage(table: dict[str, tuple[str, str] | dict[str, tuple[str, str]]], prog: str) -> str:
    lines = [f"usage: {prog} <command> [options]   ({prog} <command> --help for details)", "", "commands:"]
    for name, entry in table.items():
        if isinstance(entry, dict):
            for sub, (_, summary) in entry.items():
                lines.append(f"  {name + ' ' + sub:<18} {summary}")
        else:
            lines.append(f"  {name:<18} {entry[1]}")
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    """An exception as one line (database drivers' messages run over several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 a reported failure, 2 bad input)."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # The reader went away (``sedcity --help | head``): nothing to report, nowhere to report it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(args: list[str]) -> int:
    table: dict[str, tuple[str, str] | dict[str, tuple[str, str]]] = COMMANDS
    prog = CONSOLE_SCRIPT
    if not args or args[0] in {"-h", "--help"}:
        print(_usage(table, prog))
        return 0
    if args[0] == "--version":
        print(f"{CONSOLE_SCRIPT} {__version__}")
        return 0
    entry = table.get(args[0])
    if isinstance(entry, dict):
        prog, group = f"{prog} {args.pop(0)}", entry
        if not args or args[0] in {"-h", "--help"}:
            print(_usage(dict(group), prog))
            return 0
        if args[0] not in group:
            print(f"{prog}: unknown command {args[0]!r} (see {prog} --help)", file=sys.stderr)
            return 2
        entry = group[args[0]]
    if entry is None:
        print(f"{prog}: unknown command {args[0]!r} (see {prog} --help)", file=sys.stderr)
        return 2
    module_name, _ = entry
    prog = f"{prog} {args.pop(0)}"
    module = importlib.import_module(module_name)
    try:
        return int(module.main(args, prog=prog) or 0)
    except SedError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, its one line printed)
        if isinstance(exc.code, int):
            return exc.code
        raise
    # The start-up boundary: a port taken between the check and the bind, a database gone, a
    # full disk. The clause is evaluated only when something was raised, so it names only the
    # libraries already imported; anything else is a bug and keeps its traceback.
    except startup_error_types() as exc:
        print(f"{prog}: cannot run: {_first_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
