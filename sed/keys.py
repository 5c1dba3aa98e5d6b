"""CURVE key pairs for sensors and the fusion node: ``sed keys generate`` / ``sed keys register``.

Keys are ZeroMQ certificate files: ``NAME.key`` holds the public key (safe to copy),
``NAME.key_secret`` the key pair (mode 0600, never leaves its machine). A sensor is
registered by putting its ``SENSOR_ID.key`` into the fusion node's
``authorized_keys_dir``; the file's stem is the sensor id the key may speak for (and the
ids ``SENSOR_ID.<suffix>`` of its streams). ``sed keys register`` does that copy with
checks: the file must hold a public key only, the id must be valid, and neither the id
nor the key may already be registered. The fusion node picks a new key up at the
sensor's next connection attempt, without a restart; deleting the file revokes it: new
connections are refused at once, and messages on a connection that is already open are
dropped once the node re-reads the folder (every few seconds).

A file in the folder that is not a usable public key (junk, a secret key, a bad sensor
id, a key registered twice) is skipped with a logged error, never fatal:
:func:`read_authorized_keys` returns those problems for health checks and
``sed validate-config``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import zmq.auth

from sed.errors import ConfigError

log = logging.getLogger("sed.keys")

#: Largest file read as a key, bytes: a certificate is ~300 bytes, and a huge file is no key.
MAX_KEY_FILE_BYTES = 64 * 1024
#: A CURVE key in Z85 text: 40 characters of the Z85 alphabet (32 bytes).
_Z85_KEY = re.compile(rb"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``name.key`` and ``name.key_secret`` into ``directory``; refuse to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigError(f"{path}: exists; refusing to overwrite a key")
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def load_public_key(path: Path) -> bytes:
    """The Z85 public key in a ``.key`` or ``.key_secret`` file.

    Raises
    ------
    ConfigError
        The file is missing, not a regular file, too large, or holds no valid public key.
    """
    return _load_certificate(path)[0]


def load_keypair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file."""
    public, secret = _load_certificate(path)
    if not secret:
        raise ConfigError(f"{path}: holds no secret key; expected the '.key_secret' file")
    return public, secret


def _load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a certificate file; every failure a :class:`ConfigError`."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: {exc.strerror or exc}") from None
    if not path.is_file():  # a folder, or a FIFO that would block the reader forever
        raise ConfigError(f"{path}: not a ZeroMQ certificate: not a regular file")
    if info.st_size > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: {info.st_size} bytes (a key file holds ~300)")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: no 'public-key = ...' line") from None
    except IndexError:  # zmq's parser indexes past a key line that has no '='
        raise ConfigError(f"{path}: not a ZeroMQ certificate: a key line without '='") from None
    for kind, key in (("public", public), ("secret", secret)):
        if key is not None and not _Z85_KEY.fullmatch(key):
            raise ConfigError(f"{path}: not a ZeroMQ certificate: {kind} key is not 40 Z85 characters")
    return public, secret


@dataclasses.dataclass(frozen=True)
class AuthorizedKeys:
    """What :func:`read_authorized_keys` found.

    Attributes
    ----------
    keys : dict[bytes, str]
        Z85 public key -> sensor id (its file's stem), usable keys only.
    problems : list[str]
        One line per file skipped (or for the folder itself), naming the file and why.
    """

    keys: dict[bytes, str]
    problems: list[str]


def read_authorized_keys(directory: Path) -> AuthorizedKeys:
    """Read every ``*.key`` file of ``directory``; skip and report those that are not usable.

    Never raises: a junk file must not take down the authenticator that calls this.
    """
    problems: list[str] = []
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(".key"))
    except OSError as exc:
        return AuthorizedKeys(keys={}, problems=[f"{directory}: authorized keys folder unreadable: {exc.strerror}"])
    files_of_key: dict[bytes, list[Path]] = {}
    for path in paths:
        sensor_id = path.name[: -len(".key")]
        try:
            public, secret = _load_certificate(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if not SENSOR_ID_PATTERN.fullmatch(sensor_id):
            problems.append(f"{path}: sensor id {sensor_id!r} is invalid; expected 1-64 of A-Z a-z 0-9 _ . : -")
        elif secret:
            problems.append(f"{path}: holds a secret key; register the public '.key' file, never the secret")
        else:
            files_of_key.setdefault(public, []).append(path)
    keys: dict[bytes, str] = {}
    for public, files in files_of_key.items():
        if len(files) == 1:
            keys[public] = files[0].name[: -len(".key")]
            continue
        # Which id would the key speak for? Neither: refusing both is the only safe answer.
        names = ", ".join(repr(f.name) for f in files)
        problems.extend(f"{path}: the same key is in {names}; all refused" for path in files)
    return AuthorizedKeys(keys=keys, problems=sorted(problems))


def authorized_keys(directory: Path) -> dict[bytes, str]:
    """Map public key → sensor id from every usable ``*.key`` file in ``directory``.

    Files that are not usable are skipped with a logged error (see :func:`read_authorized_keys`).
    """
    found = read_authorized_keys(directory)
    for problem in found.problems:
        log.error("%s", problem)
    return found.keys


#: What a sensor id may look like (as :class:`sed.config.SensorSection`).
SENSOR_ID_PATTERN = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # \Z: '$' would accept a trailing newline


def register_sensor(public_key_file: Path, authorized_keys_dir: Path, *, sensor_id: str | None = None) -> Path:
    """Copy a sensor's public key into ``authorized_keys_dir`` as ``SENSOR_ID.key``.

    Parameters
    ----------
    public_key_file : Path
        The sensor's ``.key`` (never its ``.key_secret``).
    authorized_keys_dir : Path
        The fusion node's ``fusion.authorized_keys_dir``.
    sensor_id : str, optional
        Default: the file's stem.

    Raises
    ------
    ConfigError
        The file holds a secret key or no key, the id is invalid, or the id or the key is
        already registered.
    """
    sensor_id = sensor_id or public_key_file.stem
    if not SENSOR_ID_PATTERN.fullmatch(sensor_id):
        raise ConfigError(f"sensor id {sensor_id!r}; expected 1-64 of A-Z a-z 0-9 _ . : -")
    public, secret = _load_certificate(public_key_file)
    if secret:
        raise ConfigError(f"{public_key_file}: holds a secret key; register the public '.key' file, never the secret")
    authorized_keys_dir.mkdir(parents=True, exist_ok=True)
    target = authorized_keys_dir / f"{sensor_id}.key"
    if target.exists():
        raise ConfigError(f"{target}: sensor {sensor_id!r} is already registered; delete the file to replace its key")
    registered = authorized_keys(authorized_keys_dir)
    if public in registered:
        raise ConfigError(f"{public_key_file}: this key is already registered as sensor {registered[public]!r}")
    shutil.copyfile(public_key_file, target)
    return target


def revoke_sensor(authorized_keys_dir: Path, sensor_id: str) -> Path | None:
    """Delete a sensor's ``SENSOR_ID.key`` from ``authorized_keys_dir``; the removed path,
    or ``None`` when it held no key for that id.

    The fusion node refuses the key from the sensor's next connection attempt on; a
    connection already open lasts until it drops or the node restarts. The id is compared
    with the files' names, never joined into a path, so no id can reach outside the folder.
    """
    for path in authorized_keys_dir.glob("*.key"):
        if path.stem == sensor_id and path.is_file():
            path.unlink()
            return path
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkKeys:
    """Keys of a whole (test, demo or simulated) network, made in one folder.

    Attributes
    ----------
    fusion_secret_key_file, fusion_public_key_file : Path
    authorized_keys_dir : Path
        Holds the public keys of the registered sensors.
    sensor_secret_key_files : dict[str, Path]
        Sensor id -> its ``.key_secret`` (registered or not).
    """

    fusion_secret_key_file: Path
    fusion_public_key_file: Path
    authorized_keys_dir: Path
    sensor_secret_key_files: dict[str, Path]

    @classmethod
    def create(cls, directory: Path, sensor_ids: Iterable[str], *, unregistered: Iterable[str] = ()) -> NetworkKeys:
        """Fusion key pair, one pair per sensor; ``sensor_ids`` registered, ``unregistered`` not."""
        keys, authorized = directory / "keys", directory / "authorized_keys"
        authorized.mkdir(parents=True, exist_ok=True)
        fusion_public, fusion_secret = generate_keypair(keys, "fusion")
        registered = list(sensor_ids)
        secrets = {}
        for sensor_id in (*registered, *unregistered):
            public, secrets[sensor_id] = generate_keypair(keys, sensor_id)
            if sensor_id in registered:
                shutil.copy(public, authorized / public.name)
        return cls(
            fusion_secret_key_file=fusion_secret,
            fusion_public_key_file=fusion_public,
            authorized_keys_dir=authorized,
            sensor_secret_key_files=secrets,
        )


def main(argv: list[str], *, prog: str) -> int:
    from sed.runtime import CONSOLE_SCRIPT, CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (private)")
    gen.add_argument("name", help="sensor id (e.g. pole-017) or 'fusion'")
    gen.add_argument("--dir", type=Path, default=Path("keys"), help="output folder (default: ./keys)")
    reg = sub.add_parser("register", help="on the fusion node: accept a sensor's public key")
    reg.add_argument("public_key", type=Path, help="the sensor's SENSOR_ID.key")
    reg.add_argument("--authorized-keys-dir", type=Path, required=True, help="fusion.authorized_keys_dir")
    reg.add_argument("--sensor-id", help="default: the key file's name without '.key'")
    args = parser.parse_args(argv)
    if args.action == "register":
        target = register_sensor(args.public_key, args.authorized_keys_dir, sensor_id=args.sensor_id)
        print(f"registered sensor {target.stem!r}: {target} (accepted at its next connection attempt)")
        return 0
    if args.name != "fusion" and not SENSOR_ID_PATTERN.match(args.name):
        raise ConfigError(f"key name {args.name!r}; expected 'fusion' or a sensor id (1-64 of A-Z a-z 0-9 _ . : -)")
    public, secret = generate_keypair(args.dir, args.name)
    if args.name == "fusion":
        # The fusion node's key is never registered: sensors trust it, the node proves it.
        print(f"public key:  {public}   (copy to every sensor: its transport.server_public_key_file)")
        print(f"secret key:  {secret}   (this fusion node's fusion.secret_key_file; keep here only, mode 0600)")
    else:
        print(
            f"public key:  {public}   (register it on the fusion node: "
            f"{CONSOLE_SCRIPT} keys register {public.name} --authorized-keys-dir …)"
        )
        print(f"secret key:  {secret}   (this sensor's transport.secret_key_file; keep here only, mode 0600)")
    return 0


__all__ = [
    "MAX_KEY_FILE_BYTES",
    "AuthorizedKeys",
    "NetworkKeys",
    "authorized_keys",
    "generate_keypair",
    "load_keypair",
    "load_public_key",
    "read_authorized_keys",
    "register_sensor",
    "revoke_sensor",
]
