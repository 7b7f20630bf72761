"""The PostgreSQL backend can disappear from a run only visibly, and never when CI is set."""

from __future__ import annotations

from tests.server import prefect_server


def test_postgres_is_required_when_ci_is_set(monkeypatch):
    monkeypatch.delenv("CHAPCTL_TEST_BACKENDS", raising=False)
    monkeypatch.setattr(prefect_server, "postgres_available", lambda timeout=0.5: False)
    monkeypatch.setenv("CI", "true")
    assert prefect_server.backends() == ["sqlite", "postgres"]
    assert "unreachable and CI is set: the postgres tests will fail" in prefect_server.backends_report()
    monkeypatch.delenv("CI")
    assert prefect_server.backends() == ["sqlite"]
    assert "sqlite only" in prefect_server.backends_report() and "required when CI is set" in \
        prefect_server.backends_report()


def test_a_postgres_server_without_postgresql_fails_with_the_reason(monkeypatch, tmp_path):
    import pytest

    monkeypatch.setattr(prefect_server, "postgres_available", lambda timeout=0.5: False)
    with pytest.raises(RuntimeError, match="PostgreSQL at 127.0.0.1:5432 is unreachable"):
        prefect_server.PrefectServer.start(tmp_path, "postgres")
