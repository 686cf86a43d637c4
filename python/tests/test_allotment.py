"""A job registered through the Python client says what the controller
allotted (bandwidth, bytes, where its size came from), as ``pocket job
register`` prints it; before, the client kept none of it (a new user's
trial). A job opened by id and token has its map's bandwidth and bytes
(before, none: a lambda that opened the job read nothing; the Go SDK's
TestRegisterJobGivesAllotment)."""

from __future__ import annotations


def test_register_gives_allotment(client):
    job = client.register_job("allot", peak_mbps=1200, capacity_bytes=8 << 20)
    try:
        a = job.allotment
        assert a is not None and a.mbps == 1200 and a.bytes == 8 << 20 and a.sized_from == "hints", a
        job.put("k", b"v")
        assert job.allotment == a
        o = client.open_job(job.id, job.token).allotment
        assert o is not None and (o.mbps, o.bytes, o.sized_from) == (1200, 8 << 20, ""), o
    finally:
        job.deregister()
