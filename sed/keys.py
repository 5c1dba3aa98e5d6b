"""CURVE key pairs for sensors and the fusion node: ``sed keys generate``.

Keys are ZeroMQ certificate files: ``NAME.key`` holds the public key (safe to copy),
``NAME.key_secret`` the key pair (mode 0600, never leaves its machine). A sensor is
registered by copying its ``SENSOR_ID.key`` into the fusion node's
``authorized_keys_dir``; the file's stem is the sensor id the key may speak for.
"""

from __future__ import annotations

import argparse
import os
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


def main(argv: list[str], *, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (private)")
    gen.add_argument("name", help="sensor id (e.g. pole-017) or 'fusion'")
    gen.add_argument("--dir", type=Path, default=Path("keys"), help="output folder (default: ./keys)")
    args = parser.parse_args(argv)
    public, secret = generate_keypair(args.dir, args.name)
    print(f"public key:  {public}   (copy to the fusion node's authorized_keys_dir to register)")
    print(f"secret key:  {secret}   (keep on this machine only; mode 0600)")
    return 0


__all__ = ["authorized_keys", "generate_keypair", "load_keypair", "load_public_key"]
