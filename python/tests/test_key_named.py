"""NotFound and Lost raised by a single-key op name the op and the key,
as the Go SDK's errors (`pocket: get "k": ...`) and the CLI do (a new
user's trial: Job.get and Job.delete of a missing key said only "key not
found"). A bytes key that is printable UTF-8 shows as its text, any other
as its repr."""

from __future__ import annotations

import dataclasses

import pytest

import pocket
from pocket import wire


@pytest.mark.parametrize("op", ["get", "get_into", "stat", "delete", "open", "get_file"])
def test_not_found_names_the_key(job, op, tmp_path):
    calls = {
        "get": lambda k: job.get(k),
        "get_into": lambda k: job.get_into(k, bytearray(8)),
        "stat": lambda k: job.stat(k),
        "delete": lambda k: job.delete(k),
        "open": lambda k: job.open(k).read(),
        "get_file": lambda k: job.get_file(k, tmp_path / "out"),
    }
    with pytest.raises(pocket.NotFound) as ei:
        calls[op]("no/such-key")
    e = ei.value
    assert "'no/such-key'" in e.message and "'no/such-key'" in str(e), str(e)
    assert str(e).count("no/such-key") == 1, str(e)  # named once, also through another call
    assert f"{op} 'no/such-key'" in str(e), str(e)  # the call the user made
    assert e.code == pocket.Code.NOT_FOUND
    assert not job.exists("no/such-key")


def test_bytes_keys_shown_decoded_or_as_repr(job):
    with pytest.raises(pocket.NotFound, match=r"get 'abc/d': "):
        job.get(b"abc/d")
    with pytest.raises(pocket.NotFound) as ei:
        job.delete(b"\xffraw\n")
    assert repr(b"\xffraw\n") in str(ei.value), str(ei.value)


def test_delete_after_read_race_names_the_key(job):
    """A get whose delete-after-read finds the version taken raises
    NotFound naming the key, as a plain miss does."""
    job.put("once", b"v")
    assert job.get("once", delete_after_read=True) == b"v"
    with pytest.raises(pocket.NotFound, match="'once'"):
        job.get("once", delete_after_read=True)


def test_lost_names_the_key(client, job):
    """A key whose owner left the map dead raises Lost naming the key (its
    message named only the node)."""
    lost = wire.LostNode("10.255.0.1:1", 1.0, job.map.epoch)
    gone = pocket.Job(client, dataclasses.replace(job.map, lost=[lost]))
    for i in range(200):
        k = f"lost-{i}"
        if gone._st.lost_owners(k.encode(), 0):
            break
    else:
        pytest.fail("no key of the lost node")
    with pytest.raises(pocket.Lost) as ei:
        gone.get(k)
    assert f"get '{k}'" in str(ei.value) and "10.255.0.1:1" in str(ei.value), str(ei.value)
    with pytest.raises(pocket.Lost, match=f"delete '{k}'"):
        gone.delete(k)


def test_compat_get_buffer_names_the_key(cluster_env, tmp_path):
    jobid = pocket.register_job("keynamed")
    assert jobid is not None, pocket.last_error()
    p = pocket.connect("", 0)
    try:
        assert pocket.get_buffer(p, "missing/k", bytearray(4), 4, jobid) == -1
        e = pocket.last_error()
        assert isinstance(e, pocket.NotFound) and "'missing/k'" in str(e), repr(e)
        # The module API's get names itself, not the get_file it runs (a
        # new user's second trial read "get_file 'nokey'" after pocket.get).
        assert pocket.get(p, "missing/k", str(tmp_path / "out"), jobid) == -1
        e = pocket.last_error()
        assert isinstance(e, pocket.NotFound) and "get 'missing/k'" in str(e) and "get_file" not in str(e), repr(e)
        assert pocket.lookup(p, "missing/k", jobid) == -1
        assert "lookup 'missing/k': key not found" in str(pocket.last_error()), repr(pocket.last_error())
    finally:
        pocket.deregister_job(jobid)
        pocket.close(p)
