"""The ``sed`` console script.

Commands are dispatched lazily: ``sed bench localize …`` imports only
:mod:`sed.bench.localize` and hands it the remaining arguments, so a sensor on a small
CPU never imports the API stack, and ``sed --help`` answers instantly. Every command
module exposes ``main(argv, *, prog) -> int`` and owns its own argument parser.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from sed import __version__
from sed.errors import SedError

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
    "validate-config": ("sed.validate", "check a TOML config file and print every problem"),
    "train": ("sed.models.train", "train the event classifier on the shared clips (needs the 'train' extra)"),
    "bench": {
        "detect": ("sed.bench.detect", "score detectors on a clip manifest or annotated recordings"),
        "localize": ("sed.bench.localize", "score localisation on the Pittsburgh live-fire recordings"),
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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    table: dict[str, tuple[str, str] | dict[str, tuple[str, str]]] = COMMANDS
    prog = "sed"
    if not args or args[0] in {"-h", "--help"}:
        print(_usage(table, prog))
        return 0
    if args[0] == "--version":
        print(f"sed {__version__}")
        return 0
    entry = table.get(args[0])
    if isinstance(entry, dict):
        prog, group = f"{prog} {args.pop(0)}", entry
        if not args or args[0] not in group:
            print(_usage(dict(group), prog), file=sys.stderr if args else sys.stdout)
            return 2 if args else 0
        entry = group[args[0]]
    if entry is None:
        print(f"sed: unknown command {args[0]!r}\n\n{_usage(table, prog)}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
