"""The compat get_buffer into an immutable dst (a str or bytes, as Pocket's
examples pass; the bytes go to last_value) with DELETE_AFTER_READ consumes
the value. It read without asking for the value's version, so its delete
by version named version 0: the delete conflicted, the call answered -1
and the value stayed (found by a hostile review)."""

import pytest

import pocket

MiB = 1 << 20


@pytest.fixture
def registered(cluster_env):
    jobid = pocket.register_job("compat-dar", num_lambdas=2, capacityGB=1, peakMbps=100, latency_sensitive=1)
    assert jobid is not None, pocket.last_error()
    p = pocket.connect(*cluster_env["POCKET_CONTROLLER"].rsplit(":", 1))
    yield p, jobid
    pocket.deregister_job(jobid)
    pocket.close(p)


@pytest.mark.parametrize("size", [300, 2 * MiB + 77])
def test_get_buffer_immutable_dst_delete_after_read(registered, size):
    p, jobid = registered
    v = b"x" * size
    assert pocket.put_buffer(p, v, size, "dar", jobid) == 0
    rc = pocket.get_buffer(p, "dar", " " * size, size, jobid, DELETE_AFTER_READ=True)
    assert rc == 0, f"get_buffer with DELETE_AFTER_READ into a str: -1 ({pocket.last_error()!r})"
    assert p.last_value == v
    assert pocket.lookup(p, "dar", jobid) == -1, "the value read with DELETE_AFTER_READ is still there"
