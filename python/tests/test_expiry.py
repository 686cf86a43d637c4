"""A job whose token expired says so (the Go CLI's
TestExpiredJobSaysItsTokenExpired): get of a value the expiry dropped
raised NotFound("key not found") and put Revoked("the job was
deregistered"), neither naming the expiry. Now both say the job's token
expired, and when; the exception classes are unchanged."""

from __future__ import annotations

import datetime
import time

import pytest

import pocket


def test_expired_job_says_its_token_expired(client):
    job = client.register_job("expiring", ttl=2)
    assert job.map.expires_ms > time.time() * 1000
    at = datetime.datetime.fromtimestamp(job.map.expires_ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    job.put("p", b"keep", persist=True)
    job.put("a", b"drop")
    time.sleep(max(0, job.map.expires_ms / 1000 - time.time()) + 2)  # the controller ends it at its next sweep
    # The live handle: not found where a node keeps persisted values of
    # the job, revoked where it keeps none.
    with pytest.raises((pocket.NotFound, pocket.Revoked)) as nf:
        job.get("a")
    assert f"token expired at {at}" in str(nf.value), str(nf.value)
    with pytest.raises(pocket.PocketError) as rv:
        job.put("b", b"x")
    assert f"token expired at {at}" in str(rv.value) and "deregistered" not in str(rv.value), str(rv.value)
    opened = client.open_job(job.id, job.token)
    assert opened.ended and opened.get("p") == b"keep"
    with pytest.raises(pocket.NotFound) as nf:
        opened.get("a")
    assert f"token expired at {at}" in str(nf.value), str(nf.value)
