"""``sed users``: add (password from stdin), list, token, remove."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import tomli_w

from sed.api import users_cli
from sed.api.auth import authenticate, token_digest
from sed.errors import ConfigError
from sed.store import Role, Store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "authorized").mkdir()
    (tmp_path / "fusion.key_secret").write_text("x")
    path = tmp_path / "server.toml"
    raw = {
        "fusion": {"secret_key_file": "fusion.key_secret", "authorized_keys_dir": "authorized"},
        "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
    }
    path.write_text(tomli_w.dumps(raw))
    return path


def test_add_list_token_remove(config_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a sturdy passphrase\n"))
    args = ["add", "dispatch-1", "--role", "admin", "--password-stdin", "--config", str(config_path)]
    assert users_cli.main(args, prog="sed users") == 0
    assert users_cli.main(["list", "--config", str(config_path)], prog="sed users") == 0
    assert users_cli.main(["token", "dispatch-1", "--label", "prometheus", "--config", str(config_path)], prog="x") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "added admin dispatch-1" and out[1].startswith("dispatch-1") and "admin" in out[1]
    token = out[-1]
    store = Store(f"sqlite:///{config_path.parent / 'sed.sqlite'}")
    try:
        user = authenticate(store, "dispatch-1", "a sturdy passphrase")
        assert user is not None and user.role is Role.ADMIN
        assert store.accounts.user_for_token(token_digest(token), now_ns=2**62) is not None  # no expiry
        monkeypatch.setattr("sys.stdin", io.StringIO("another passphrase\n"))
        assert users_cli.main(args, prog="sed users") == 1  # exists already
        assert users_cli.main(["remove", "dispatch-1", "--config", str(config_path)], prog="sed users") == 0
        assert store.accounts.list_users() == []
    finally:
        store.close()


def test_weak_password_and_bad_name_are_refused(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(ConfigError, match="at least 10"):
        users_cli.main(["add", "bob", "--password-stdin", "--config", str(config_path)], prog="sed users")
    with pytest.raises(ConfigError, match="username"):
        users_cli.main(["add", "bob smith", "--password-stdin", "--config", str(config_path)], prog="sed users")
