"""$POCKET_INSECURE=1 asks for plain TCP to the controller, as the CLI's
--insecure (pocket up --insecure prints it): a Client given no tls_dir
then leaves the default TLS directory (DATA/tls with a ca.pem) alone.
A word it does not know, or POCKET_TLS_DIR beside it, raises ValueError."""

from __future__ import annotations

import pytest

from pocket import errors
from pocket.client import Client


@pytest.fixture
def data_dir_with_a_ca(tmp_path, monkeypatch):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.pem").write_text("not a certificate")
    monkeypatch.setenv("POCKET_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("POCKET_TLS_DIR", raising=False)
    return tmp_path


def test_insecure_from_the_environment(data_dir_with_a_ca, monkeypatch):
    monkeypatch.setenv("POCKET_INSECURE", "1")
    with Client("127.0.0.1:1") as c:
        assert c.controller.tls is None
    monkeypatch.setenv("POCKET_INSECURE", "0")
    with pytest.raises(errors.PocketError, match="holds no client.pem"):
        Client("127.0.0.1:1")  # the default TLS directory is read


@pytest.mark.parametrize("env,says", [
    ({"POCKET_INSECURE": "maybe"}, "want 1"),
    ({"POCKET_INSECURE": "1", "POCKET_TLS_DIR": "/nonexistent"}, "both set"),
])
def test_insecure_from_the_environment_refused(data_dir_with_a_ca, monkeypatch, env, says):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=says):
        Client("127.0.0.1:1")
