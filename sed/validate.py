"""``sed validate-config FILE…``: check sensor, server or scene TOML files the way ``sed sensor``
and ``sed server`` will need them at start, and exit non-zero on any problem.

Beyond the file itself (keys, values, types: :func:`sed.config.load_config`), it checks the
machine the file is for: key files readable and holding ZeroMQ certificates (a junk ``*.key``
in ``fusion.authorized_keys_dir`` is named), bind endpoints and the API port free, folders for
the outbox and the database present, the database reachable (``--offline`` skips that). Each
problem is one line naming the file, the key, the value and what was expected. Run it on the
machine that will run the process: ports and paths are that machine's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sed.config import SensorConfig, ServerConfig, load_config
from sed.config.base import Section
from sed.errors import ConfigError
from sed.keys import load_keypair, load_public_key, read_authorized_keys

#: Longest wait for the database to answer, s.
DATABASE_TIMEOUT_S = 5

#: Which parts of a server file each role opens at start.
_SERVER_ROLES = {"fusion": ("fusion", "store"), "api": ("api", "store"), "server": ("fusion", "api", "store")}


def environment_problems(config: Section, *, source: str, role: str = "server", offline: bool = False) -> list[str]:
    """What would stop a process started with ``config`` on this machine, one line each.

    Parameters
    ----------
    config : SensorConfig, ServerConfig or SceneConfig
        Already validated by :func:`sed.config.load_config`.
    source : str
        The file's name, for the messages.
    role : {"sensor", "fusion", "api", "server"}
        Which process: a separate ``api`` does not bind the fusion node's endpoint, nor the
        fusion node the API's port.
    offline : bool
        Skip connecting to the database.

    Returns
    -------
    list of str
        Empty when the process can start.
    """
    if isinstance(config, SensorConfig):
        return _sensor_problems(config, source)
    if isinstance(config, ServerConfig):
        parts = _SERVER_ROLES.get(role, _SERVER_ROLES["server"])
        return _server_problems(config, source, parts=parts, offline=offline)
    return []


def _key_problem(source: str, key: str, path: Path, *, secret: bool) -> str | None:
    try:
        load_keypair(path) if secret else load_public_key(path)
    except ConfigError as exc:
        return f"{source}: {key} = '{path}': {exc}"
    return None


def _sensor_problems(config: SensorConfig, source: str) -> list[str]:
    transport = config.transport
    problems = [
        _key_problem(source, "transport.secret_key_file", transport.secret_key_file, secret=True),
        _key_problem(source, "transport.server_public_key_file", transport.server_public_key_file, secret=False),
        _writable_folder_problem(source, "transport.outbox_path", transport.outbox_path),
    ]
    if config.capture.source == "file" and config.capture.file is not None:
        problems.append(_audio_problem(source, "capture.file", config.capture.file))
    return [p for p in problems if p is not None]


def _server_problems(config: ServerConfig, source: str, *, parts: tuple[str, ...], offline: bool) -> list[str]:
    problems: list[str | None] = []
    if "fusion" in parts:
        fusion = config.fusion
        problems.append(_key_problem(source, "fusion.secret_key_file", fusion.secret_key_file, secret=True))
        problems += _authorized_keys_problems(source, fusion.authorized_keys_dir)
        problems.append(_zmq_bind_problem(source, "fusion.bind_endpoint", fusion.bind_endpoint))
        if config.api.incident_feed_endpoint:
            problems.append(_zmq_bind_problem(source, "api.incident_feed_endpoint", config.api.incident_feed_endpoint))
    if "api" in parts:
        problems.append(_tcp_bind_problem(source, "api.port", config.api.host, config.api.port))
    if "store" in parts:
        problems.append(store_problem(source, config.store.url, offline=offline))
    return [p for p in problems if p is not None]


def _authorized_keys_problems(source: str, directory: Path) -> list[str | None]:
    if not directory.is_dir():
        return [f"{source}: fusion.authorized_keys_dir = '{directory}'; expected a folder of sensors' '*.key' files"]
    found = read_authorized_keys(directory)
    # The node runs without these files (it skips them), but the sensors they belong to cannot connect.
    return [f"{source}: fusion.authorized_keys_dir: {problem} (the fusion node skips it)" for problem in found.problems]


def _writable_folder_problem(source: str, key: str, path: Path) -> str | None:
    folder = path.parent
    if not folder.is_dir():
        return f"{source}: {key} = '{path}'; folder '{folder}' does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{source}: {key} = '{path}'; folder '{folder}' is not writable by this user"
    return None


def _audio_problem(source: str, key: str, path: Path) -> str | None:
    import soundfile

    try:
        soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        return f"{source}: {key} = '{path}'; not a readable audio file ({exc})"
    return None


def _zmq_bind_problem(source: str, key: str, endpoint: str) -> str | None:
    """Can the process bind ``endpoint`` here? Tested with plain sockets: ZeroMQ closes its
    sockets in a background thread, so a test bind through it could still hold the port when
    the process binds it for real."""
    scheme, _, address = endpoint.partition("://")
    if scheme == "tcp":
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit():
            return None if port == "*" else f"{source}: {key} = {endpoint!r}; expected tcp://HOST:PORT"
        return _tcp_bind_problem(source, key, "" if host == "*" else host, int(port), shown=endpoint)
    if scheme == "ipc":
        path = Path(address)
        if not path.parent.is_dir():
            return f"{source}: {key} = {endpoint!r}; folder '{path.parent}' does not exist"
        if path.is_socket():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(str(path)) == 0:
                    return f"{source}: {key} = {endpoint!r}; cannot bind here: another process listens on it"
        return None
    if scheme == "inproc":
        return None
    return f"{source}: {key} = {endpoint!r}; expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"


def _tcp_bind_problem(source: str, key: str, host: str, port: int, *, shown: str | None = None) -> str | None:
    if port == 0:
        return None  # any free port
    value = repr(shown) if shown is not None else f"{port} on {host!r}"
    if host in {name for _, name in socket.if_nameindex()}:
        return None  # ZeroMQ binds an interface by name ("tcp://eth0:5750"); the OS cannot test that
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{source}: {key} = {value}; {host!r} is not an address of this machine ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As uvicorn and ZeroMQ bind: SO_REUSEADDR, so a port in TIME_WAIT is not reported as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return f"{source}: {key} = {value}; cannot listen: {exc.strerror}"
    return None


def store_problem(source: str, url: str, *, offline: bool = False) -> str | None:
    """Whether the database at ``url`` can be opened: a SQLite file's folder exists and is
    writable; a server answers within :data:`DATABASE_TIMEOUT_S` (not asked when ``offline``)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{source}: store.url; not a database URL (expected sqlite:///… or postgresql+psycopg://…)"
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            return None
        return _writable_folder_problem(source, "store.url", Path(database))
    if offline:
        return None
    try:
        engine = create_engine(url, connect_args={"connect_timeout": DATABASE_TIMEOUT_S})
    except (NoSuchModuleError, ImportError) as exc:
        return f"{source}: store.url = {shown!r}; no driver for it here ({exc}); install the 'postgres' extra"
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "no answer"
        return f"{source}: store.url = {shown!r}; database unreachable: {reason}"
    finally:
        engine.dispose()
    return None


def main(argv: list[str], *, prog: str) -> int:
    from sed.runtime import CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument("paths", type=Path, nargs="+", help="TOML files ([sensor], [fusion] or [scene] kind)")
    parser.add_argument("--offline", action="store_true", help="do not connect to the database")
    parser.add_argument(
        "--role",
        choices=["server", "fusion", "api"],
        default="server",
        help="for a server file: which process will use it (default server: fusion node and API)",
    )
    args = parser.parse_args(argv)
    status = 0
    for path in args.paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(f"{exc}")
            status = 1
            continue
        problems = environment_problems(config, source=str(path), role=args.role, offline=args.offline)
        for problem in problems:
            print(problem)
        if problems:
            status = 1
        else:
            print(f"{path}: ok ({type(config).__name__})")
    return status


__all__ = ["environment_problems", "main", "store_problem"]
