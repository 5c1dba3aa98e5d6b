"""CURVE key pairs for sensors and the fusion node: ``sed keys generate`` / ``sed keys register``.

Keys are ZeroMQ certificate files: ``NAME.key`` holds the public key (safe to copy),
``NAME.key_secret`` the key pair (mode 0600, never leaves its machine). A sensor is
registered by putting its ``SENSOR_ID.key`` into the fusion node's
``authorized_keys_dir``; the file's stem is the sensor id the key may speak for (and the
ids ``SENSOR_ID.<suffix>`` of its streams). ``sed keys register`` does that copy with
checks: the file must hold a public key only, the id must be valid, and neither the id
nor the key may already be registered. The fusion node picks a new key up at the
sensor's next connection attempt, without a restart; deleting the file revokes it for
new connections (restart the node to drop a connection that is already open).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import zmq.auth

from sed.errors import ConfigError


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
    """The Z85 public key in a ``.key`` or ``.key_secret`` file."""
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: {exc}") from None
    return public


def load_keypair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a ZeroMQ certificate: {exc}") from None
    if not secret:
        raise ConfigError(f"{path}: holds no secret key; expected the '.key_secret' file")
    return public, secret


def authorized_keys(directory: Path) -> dict[bytes, str]:
    """Map public key → sensor id from every ``*.key`` file in ``directory``."""
    keys: dict[bytes, str] = {}
    for path in sorted(directory.glob("*.key")):
        keys[load_public_key(path)] = path.stem
    return keys


#: What a sensor id may look like (as :class:`sed.config.SensorSection`).
SENSOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
    if not SENSOR_ID_PATTERN.match(sensor_id):
        raise ConfigError(f"sensor id {sensor_id!r}; expected 1-64 of A-Z a-z 0-9 _ . : -")
    try:
        _, secret = zmq.auth.load_certificate(public_key_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{public_key_file}: not a ZeroMQ certificate: {exc}") from None
    if secret:
        raise ConfigError(f"{public_key_file}: holds a secret key; register the public '.key' file, never the secret")
    public = load_public_key(public_key_file)
    authorized_keys_dir.mkdir(parents=True, exist_ok=True)
    target = authorized_keys_dir / f"{sensor_id}.key"
    if target.exists():
        raise ConfigError(f"{target}: sensor {sensor_id!r} is already registered; delete the file to replace its key")
    registered = authorized_keys(authorized_keys_dir)
    if public in registered:
        raise ConfigError(f"{public_key_file}: this key is already registered as sensor {registered[public]!r}")
    shutil.copyfile(public_key_file, target)
    return target


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
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
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
    public, secret = generate_keypair(args.dir, args.name)
    print(f"public key:  {public}   (register it on the fusion node: sed keys register {public.name} …)")
    print(f"secret key:  {secret}   (keep on this machine only; mode 0600)")
    return 0


__all__ = [
    "NetworkKeys",
    "authorized_keys",
    "generate_keypair",
    "load_keypair",
    "load_public_key",
    "register_sensor",
]
