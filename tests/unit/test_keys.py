"""``sed keys``: key pairs on disk, and registering a sensor at the fusion node."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sed.errors import ConfigError
from sed.keys import authorized_keys, generate_keypair, load_keypair, load_public_key, main, register_sensor


def test_generated_secret_is_private_and_never_overwritten(tmp_path: Path) -> None:
    public, secret = generate_keypair(tmp_path, "pole-3")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert load_keypair(secret)[0] == load_public_key(public)
    with pytest.raises(ConfigError, match="exists; refusing to overwrite a key"):
        generate_keypair(tmp_path, "pole-3")


def test_registered_key_file_names_the_sensor(tmp_path: Path) -> None:
    public, _ = generate_keypair(tmp_path / "pole", "pole-3")
    target = register_sensor(public, tmp_path / "authorized")
    assert target == tmp_path / "authorized" / "pole-3.key"
    assert authorized_keys(tmp_path / "authorized") == {load_public_key(public): "pole-3"}


@pytest.mark.parametrize(
    ("which", "kwargs", "message"),
    [
        ("secret", {}, "holds a secret key; register the public '.key' file"),
        ("public", {"sensor_id": "bad id"}, "sensor id 'bad id'"),
    ],
)
def test_register_refuses_secrets_and_bad_ids(tmp_path: Path, which: str, kwargs: dict, message: str) -> None:
    public, secret = generate_keypair(tmp_path, "pole-4")
    with pytest.raises(ConfigError, match=message):
        register_sensor(public if which == "public" else secret, tmp_path / "authorized", **kwargs)
    assert not (tmp_path / "authorized").exists() or not list((tmp_path / "authorized").iterdir())


def test_register_refuses_a_taken_id_or_a_key_registered_under_another_id(tmp_path: Path) -> None:
    public, _ = generate_keypair(tmp_path / "a", "pole-5")
    other, _ = generate_keypair(tmp_path / "b", "pole-5")
    register_sensor(public, tmp_path / "authorized")
    with pytest.raises(ConfigError, match="sensor 'pole-5' is already registered"):
        register_sensor(other, tmp_path / "authorized")
    with pytest.raises(ConfigError, match="already registered as sensor 'pole-5'"):
        register_sensor(public, tmp_path / "authorized", sensor_id="pole-6")


def test_cli_generates_then_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "pole-9", "--dir", str(tmp_path / "keys")], prog="sed keys") == 0
    public = tmp_path / "keys" / "pole-9.key"
    assert main(["register", str(public), "--authorized-keys-dir", str(tmp_path / "auth")], prog="sed keys") == 0
    assert "registered sensor 'pole-9'" in capsys.readouterr().out
    assert (tmp_path / "auth" / "pole-9.key").read_bytes() == public.read_bytes()
