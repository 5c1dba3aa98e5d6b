"""``sed validate-config PATH``: check a sensor, server or scene TOML file and exit non-zero on problems."""

from __future__ import annotations

import argparse
from pathlib import Path

from sed.config import load_config
from sed.errors import ConfigError


def main(argv: list[str], *, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("paths", type=Path, nargs="+", help="TOML files ([sensor], [fusion] or [scene] kind)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(f"{exc}")
            status = 1
        else:
            print(f"{path}: ok ({type(config).__name__})")
    return status
