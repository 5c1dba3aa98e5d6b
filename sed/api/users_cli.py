"""``sed users``: manage operations-centre accounts from the server's shell.

    sedcity users add NAME [--role operator|admin] --config server.toml   (asks for the password twice)
    sedcity users list --config server.toml
    sedcity users remove NAME --config server.toml
    sedcity users token NAME [--label prometheus] [--ttl-days N] --config server.toml

Only the file's ``[store]`` section is read (other sections may be incomplete, their key
files absent), or give the database directly with ``--store-url`` (e.g.
``--store-url sqlite:///sed.sqlite``; ``SED__STORE__URL`` overrides the file's as for the server).

``add`` reads the password from the terminal, or from standard input with
``--password-stdin`` (for provisioning scripts); it is never a command-line argument, so it
does not end up in the shell history or the process list. ``token`` prints a long-lived
API token for a machine client (e.g. Prometheus scraping ``/metrics``); only its hash is kept.
"""

from __future__ import annotations

import argparse
import getpass
import math
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ConfigDict

from sed.api.auth import check_password_strength, hash_password, issue_token
from sed.api.routes.users import USERNAME_PATTERN
from sed.config import Section, StoreSection, load_config, parse_config
from sed.errors import ConfigError
from sed.runtime import CommandParser
from sed.store import ConflictError, Role, Store
from sed.validate import store_problem


class _StoreOnly(Section):
    """The ``[store]`` section of a server file; the other sections are not this command's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    store: StoreSection = StoreSection()


def _store_url(args: argparse.Namespace) -> str:
    """The database URL, checked reachable (one clear line rather than a driver's traceback)."""
    if args.store_url is not None:
        source = "--store-url"
        url = parse_config({"store": {"url": args.store_url}}, _StoreOnly, source=source).store.url
    else:
        source = str(args.config)
        url = load_config(args.config, _StoreOnly).store.url
    problem = store_problem(source, url)
    if problem is not None:
        raise ConfigError(problem)
    return url


def _read_password(from_stdin: bool, username: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {username}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    problem = check_password_strength(password, username=username)
    if problem is not None:
        raise ConfigError(problem)
    return password


def main(argv: list[str], *, prog: str) -> int:
    parser = CommandParser(prog=prog, description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="server TOML (only its [store] section is read)")
    where.add_argument("--store-url", help="database URL instead of a config file, e.g. sqlite:///sed.sqlite")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", parents=[common], help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=[str(r) for r in Role], default=str(Role.OPERATOR))
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    commands.add_parser("list", parents=[common], help="list users")
    remove = commands.add_parser("remove", parents=[common], help="delete a user and revoke their tokens")
    remove.add_argument("username")
    token = commands.add_parser("token", parents=[common], help="print a new API token for a user")
    token.add_argument("username")
    token.add_argument("--label", type=_label, default="cli", help="what the token is for (default 'cli')")
    token.add_argument("--ttl-days", type=_ttl_days, default=None, help="expiry in days (default: until revoked)")
    args = parser.parse_args(argv)
    store = Store(_store_url(args))
    try:
        return _run(args, store, prog=prog)
    finally:
        store.close()


#: Longest token lifetime ``--ttl-days`` accepts, days (longer: leave it out, until revoked).
MAX_TTL_DAYS = 3650.0


def _ttl_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TTL_DAYS):
        raise argparse.ArgumentTypeError(f"{text!r}; expected days > 0 and <= {MAX_TTL_DAYS:g}")
    return value


def _label(text: str) -> str:
    if not 1 <= len(text) <= 64 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r}; expected 1-64 printable characters")
    return text


def _run(args: argparse.Namespace, store: Store, *, prog: str) -> int:
    now_ns = time.time_ns()
    if args.command == "list":
        for user in store.accounts.list_users():
            created = datetime.fromtimestamp(user.created_at_ns / 1e9, UTC).isoformat(timespec="seconds")
            print(f"{user.username:<24} {user.role:<9} created {created}")
        return 0
    if not re.fullmatch(USERNAME_PATTERN, args.username):
        raise ConfigError(f"username {args.username!r}; expected letters, digits and _.@- (at most 64)")
    if args.command == "add":
        password = _read_password(args.password_stdin, args.username)
        try:
            store.accounts.add_user(
                args.username, password_hash=hash_password(password), role=Role(args.role), now_ns=now_ns
            )
        except ConflictError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 1
        store.accounts.audit(username="cli", action="user.add", target=f"{args.username} ({args.role})", at_ns=now_ns)
        print(f"added {args.role} {args.username}")
        return 0
    if store.accounts.get_user(args.username) is None:
        print(f"{prog}: no user {args.username!r}", file=sys.stderr)
        return 1
    if args.command == "remove":
        store.accounts.remove_user(args.username)
        store.accounts.audit(username="cli", action="user.delete", target=args.username, at_ns=now_ns)
        print(f"removed {args.username}")
        return 0
    ttl_s = None if args.ttl_days is None else args.ttl_days * 86400
    token, _ = issue_token(store, args.username, label=args.label, now_ns=now_ns, ttl_s=ttl_s)
    store.accounts.audit(username="cli", action="token.issue", target=f"{args.username} ({args.label})", at_ns=now_ns)
    print(token)
    return 0


__all__ = ["main"]
