"""The service's `micheck` subcommands, in process, on a real SQLite file."""

from __future__ import annotations

import pytest
from micheck.service import auth

from micheck.cli import main
from micheck.settings import Settings
from micheck.storage.db import Database


@pytest.fixture
def var(tmp_path, monkeypatch):
    monkeypatch.setenv("MICHECK_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("MICHECK_DATABASE_URL", raising=False)
    return tmp_path


def test_token_create_and_revoke(var, capsys):
    assert main(["db", "upgrade"]) == 0
    from micheck.storage.migrations import head_revision

    assert f"revision {head_revision()} (head" in capsys.readouterr().out
    assert main(["token", "create", "alice", "--admin"]) == 0
    token = capsys.readouterr().out.strip()
    db = Database(Settings())
    assert auth.lookup(db, token) == auth.Caller("alice", True)
    assert main(["token", "create", "alice"]) == 3  # exists: one line, no traceback
    assert "revoke it first" in capsys.readouterr().err
    assert main(["token", "revoke", "alice"]) == 0
    assert auth.lookup(db, token) is None
    assert main(["token", "revoke", "alice"]) == 3
    assert main(["token", "create", "bad name!"]) == 3
    db.dispose()


def test_bad_worker_device_and_database(var, capsys, monkeypatch):
    assert main(["worker", "--device", "gpu7"]) == 2
    assert "--device" in capsys.readouterr().err
    monkeypatch.setenv("MICHECK_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert main(["db", "upgrade"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("micheck: database") and "Traceback" not in err
