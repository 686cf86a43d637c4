"""The module API keeps the credentials of the newest compat._MAX_CREDS
jobs it deregistered, not every one (a soak: about 480 bytes a job for the
life of the process)."""

from __future__ import annotations

from pocket import compat


def test_ended_jobs_credentials_are_bounded(monkeypatch):
    monkeypatch.setattr(compat, "_MAX_CREDS", 3)
    monkeypatch.setattr(compat, "_creds", {})
    monkeypatch.setattr(compat, "_deregistered", set())
    for i in range(10):
        compat._ended(f"bound-{i}", f"cred-{i}")
    compat._ended("bound-9", "cred-9b")
    assert list(compat._creds) == ["bound-7", "bound-8", "bound-9"]
    assert compat._creds["bound-9"] == "cred-9b"
    assert compat._deregistered == {"bound-7", "bound-8", "bound-9"}
