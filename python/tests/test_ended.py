"""A job whose token expired (new user's trial): nobody received its
credential, yet its persisted values stay on its nodes. Its token opens it
as an ended job on the final map the controller kept, in the Pythonic API
(Client.open_job) and in the module API (POCKET_TOKEN and POCKET_JOB). On
the old code both raised UnknownJob."""

import time

import pytest

import pocket


def _open_ended(client, jid, tok, timeout=20.0):
    """Opens jid with tok until the handle says the job ended (its token
    expired and the controller ended it)."""
    end = time.monotonic() + timeout
    while True:
        try:
            j = client.open_job(jid, tok)
            if j.ended:
                return j
        except pocket.Revoked:
            pass  # expired, not yet ended by the controller's sweeper
        assert time.monotonic() < end, f"job {jid} not ended {timeout} s on"
        time.sleep(0.1)


def test_expired_job_opens_with_its_token(client, cluster_env, monkeypatch):
    j = client.register_job("ttl-py", ttl=2)
    other = client.register_job("ttl-py-other")
    jid, tok = j.id, j.token_hex
    j.put("p/a", b"keepme", persist=True)
    j.put("p/b", b"keeptoo", persist=True)
    j.put("p/c", b"goes")

    e = _open_ended(client, jid, tok)
    assert e.get("p/a") == b"keepme"
    assert [x.name for x in e.list("p/")] == ["p/a", "p/b"]
    with pytest.raises(pocket.Revoked):
        e.put("p/d", b"x", persist=True)
    # Another job's token, or zeros, gets what it gets for a job that
    # never was: bad token (nothing tells which jobs exist).
    for wrong in (other.token, bytes(len(other.token))):
        with pytest.raises(pocket.BadToken):
            client.open_job(jid, wrong)
        with pytest.raises(pocket.BadToken):
            client.open_job("never-1", wrong)

    # The module API with the job's token: reads, and hands on the credential.
    monkeypatch.setenv("POCKET_TOKEN", tok)
    monkeypatch.setenv("POCKET_JOB", jid)
    p = pocket.connect("", 0)
    b = bytearray(6)
    assert pocket.get_buffer(p, "p/a", b, 6, jid) == 0, pocket.last_error()
    assert bytes(b) == b"keepme"
    cred = pocket.job_credential(jid)
    assert cred, pocket.last_error()
    assert pocket.delete(p, "p/a", jid) == 0, pocket.last_error()

    # The credential, opened elsewhere, reads and deletes the rest.
    again = client.open_credential(cred)
    assert again.ended and again.get("p/b") == b"keeptoo"
    again.delete("p/b")
    assert e.list("p/") == []
    other.deregister()

    # Nothing kept: the controller drops the map, and the token opens nothing.
    end = time.monotonic() + 20
    while True:
        try:
            client.open_job(jid, tok)
        except pocket.UnknownJob:
            break
        assert time.monotonic() < end, "the final map still kept 20 s after its last value went"
        time.sleep(0.1)
