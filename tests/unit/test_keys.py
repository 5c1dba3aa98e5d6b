"""``sed keys``: key pairs on disk, and registering a sensor at the fusion node."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest

from sed.errors import ConfigError
from sed.keys import (
    MAX_KEY_FILE_BYTES,
    authorized_keys,
    generate_keypair,
    load_keypair,
    load_public_key,
    main,
    read_authorized_keys,
    register_sensor,
)


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
        ("public", {"sensor_id": "pole-4\n"}, r"sensor id 'pole-4\\n'"),
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


def _junk_folder(tmp_path: Path) -> tuple[Path, bytes]:
    """An authorised-keys folder with one good key and one file of every kind of junk."""
    folder = tmp_path / "authorized"
    public, _ = generate_keypair(tmp_path / "keys", "pole-1")
    register_sensor(public, folder)
    other_public, other_secret = generate_keypair(tmp_path / "keys", "pole-2")
    (folder / "empty.key").write_bytes(b"")
    (folder / "no-equals.key").write_bytes(b"public-key\n")  # made zmq.auth.load_certificate raise IndexError
    (folder / "binary.key").write_bytes(bytes(range(256)) * 4)
    (folder / "short.key").write_bytes(b'metadata\ncurve\n    public-key = "abc"\n')
    (folder / "huge.key").write_bytes(b"#" * (MAX_KEY_FILE_BYTES + 1))
    (folder / "folder.key").mkdir()
    os.mkfifo(folder / "fifo.key")  # opening it would block the authenticator forever
    (folder / "dangling.key").symlink_to(tmp_path / "nowhere")
    shutil.copy(other_secret, folder / "pole-2.key")  # a secret copied in by mistake
    shutil.copy(other_public, folder / "bad id.key")
    twin, _ = generate_keypair(tmp_path / "keys", "pole-3")
    register_sensor(twin, folder)
    shutil.copy(twin, folder / "pole-3-again.key")  # the same key under a second id: both refused
    return folder, load_public_key(public)


def test_junk_key_files_are_skipped_and_reported_never_raised(tmp_path: Path) -> None:
    folder, good = _junk_folder(tmp_path)
    found = read_authorized_keys(folder)
    assert found.keys == {good: "pole-1"}
    reported = {problem.split(":")[0] for problem in found.problems}
    junk = {p.name for p in folder.iterdir()} - {"pole-1.key"}
    assert reported == {str(folder / name) for name in junk}
    by_file = {Path(problem.split(":")[0]).name: problem for problem in found.problems}
    assert "not a ZeroMQ certificate" in by_file["no-equals.key"]
    assert "not a regular file" in by_file["fifo.key"]
    assert "holds a secret key" in by_file["pole-2.key"]
    assert "sensor id 'bad id' is invalid" in by_file["bad id.key"]
    assert "same key is in 'pole-3-again.key', 'pole-3.key'; all refused" in by_file["pole-3.key"]


def test_authorized_keys_logs_each_skipped_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder, good = _junk_folder(tmp_path)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sed.keys"):
        assert authorized_keys(folder) == {good: "pole-1"}
    assert len(caplog.records) == len(read_authorized_keys(folder).problems) == 12


def test_missing_or_file_folder_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    assert read_authorized_keys(tmp_path / "absent").keys == {}
    assert "authorized keys folder unreadable" in read_authorized_keys(tmp_path / "absent").problems[0]
    (tmp_path / "file").write_text("x")
    assert read_authorized_keys(tmp_path / "file").problems[0].startswith(f"{tmp_path / 'file'}: ")


@pytest.mark.parametrize("content", [b"public-key\n", b"", b'public-key = "' + b"!" * 39 + b'"\n'])
def test_loading_a_junk_key_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"junk\.key: not a ZeroMQ certificate"):
        load_public_key(path)
