"""A deregistration the controller accepted ends the job whatever its
nodes did, as ``pocket job deregister`` and the Go SDK's Job.Deregister
have it: the map's dead nodes (their copy of the job's data went with
them) are no failure, and live nodes that could not drop the job's data
raise DropError naming them, the Job an ended job's all the same. Before,
Job.deregister raised Unavailable in both cases and left the Job a live
job's whose token was revoked (a value on the dead node read as
Unavailable, "retry", not Lost; a listing failed), and deregister_job
returned -1 and kept the job's token.

The helper's controller marks no node dead by itself (dead after an
hour): a killed node stays active to it (a live node whose drop fails)
until the test marks it dead."""

from __future__ import annotations

import dataclasses
import time

import pytest

import pocket
from pocket import wire

from conftest import HelperCluster


@pytest.fixture
def steady_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, "-1s", "1h")
    yield c
    c.stop()


def _owner(job: pocket.Job, key: str) -> str:
    st = job._st
    return st.addrs[st.set.pick(key.encode(), 0)]


def _deadless(cl: pocket.Client) -> None:
    """Makes cl's maps mark no node dead, as the map a deregistration
    fetches right after a node's death may not (the controller hands out a
    changed map once the live nodes have it): the Job learns the dead
    nodes from the deregistration's result."""
    get_map = cl.controller.get_map

    def deadless(job, token):
        m = get_map(job, token)
        nodes = [dataclasses.replace(n, state=wire.NODE_ACTIVE) if n.state == wire.NODE_DEAD else n for n in m.nodes]
        return dataclasses.replace(m, nodes=nodes)
    cl.controller.get_map = deadless


def _job(cl: pocket.Client, name: str) -> tuple[pocket.Job, list[str]]:
    """A job on the three nodes holding persisted values p/NNN and others
    t/NNN, and its nodes in map order."""
    job = cl.register_job(name, lambdas=120)
    nodes = [n.addr for n in job.map.nodes]
    assert len(nodes) == 3
    for i in range(30):
        job.put(f"p/{i:03d}", f"kept p/{i:03d}".encode(), persist=True)
        job.put(f"t/{i:03d}", b"dropped")
    return job, nodes


def _keys_on(job: pocket.Job, prefix: str, addr: str) -> list[str]:
    return [k for k in (f"{prefix}/{i:03d}" for i in range(30)) if _owner(job, k) == addr]


def _check_ended(job: pocket.Job, dead: str, healthy: str) -> None:
    """The Job is an ended job's: a value on the dead node reads as Lost,
    naming it (a live job's raises Unavailable); on the healthy node its
    persisted values read back, its others raise NotFound, a put raises
    Revoked."""
    assert job._retired
    with pytest.raises(pocket.Lost, match=dead):
        job.get(_keys_on(job, "p", dead)[0])
    for k in _keys_on(job, "p", healthy):
        assert job.get(k) == f"kept {k}".encode()
    tmp = _keys_on(job, "t", healthy)
    with pytest.raises(pocket.NotFound):
        job.get(tmp[0])
    with pytest.raises(pocket.Revoked):
        job.put(tmp[0], b"x")


def _assert_ended_at_controller(cl: pocket.Client, job: pocket.Job) -> None:
    """The controller has ended the job: it answers unknown job, or, while
    nodes keep the job's persisted values, the final map marked ended."""
    try:
        m = cl.controller.get_map(job.id, job.map.token)
    except pocket.UnknownJob:
        return
    assert m.ended, "the controller still hands out the job's map as a live job's"


def test_dead_node_is_no_failure(steady_cluster):
    c = steady_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        _deadless(cl)
        job, nodes = _job(cl, "dead-only")
        dead, healthy = nodes[0], nodes[1]
        c.command(f"kill {dead}")
        c.command(f"dead {dead}")
        res = job.deregister()
        assert res.dead_nodes() == [dead] and res.other_failures() == [] and res.nodes == 2
        _check_ended(job, dead, healthy)
        # The listing and the count leave the dead node out without
        # dialing it for 5 s: the deregistration marked it suspect, so its
        # first refused dial finds it gone.
        kept = sorted(_keys_on(job, "p", nodes[1]) + _keys_on(job, "p", nodes[2]))
        assert [e.name for e in job.list("p/")] == kept
        assert job.gone_nodes() == [dead]
        assert res.persisted_bytes and res.count_error == ""
        _assert_ended_at_controller(cl, job)
        # The credential marks the dead node (as the Go SDK's): another
        # process lists through it at once, the dead node found gone at its
        # first refused dial, not after 5 s of dialing (it was written as an
        # active node before).
        with pocket.Client(insecure=True) as offline:
            t0 = time.monotonic()
            cj = offline.open_credential(res.credential)
            assert [e.name for e in cj.list("p/")] == kept
            assert cj.gone_nodes() == [dead] and time.monotonic() - t0 < 2.5


def test_live_node_failure_ends_the_job(steady_cluster):
    c = steady_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        _deadless(cl)
        job, nodes = _job(cl, "live-failure")
        dead, down, healthy = nodes
        c.command(f"kill {dead}")
        c.command(f"dead {dead}")
        c.command(f"kill {down}")  # active to the controller: its drop fails
        with pytest.raises(pocket.DropError) as ei:
            job.deregister(count_persisted=False)
        e = ei.value
        assert isinstance(e, pocket.Unavailable)
        assert e.result.dead_nodes() == [dead]
        assert len(e.result.other_failures()) == 1 and down in e.result.other_failures()[0]
        assert "deregistered" in str(e) and down in str(e) and dead in str(e)
        assert e.result.credential == job.credential()
        _check_ended(job, dead, healthy)
        _assert_ended_at_controller(cl, job)


def test_refused_deregistration_leaves_the_job_live(steady_cluster):
    """A deregistration the controller refused raises its error, no
    DropError, and leaves the Job live."""
    c = steady_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job = cl.register_job("refused")
        job.put("v", b"live")
        real = cl.controller.deregister_job

        def refuse(j, token):
            raise pocket.BadToken("refused by the test")
        cl.controller.deregister_job = refuse
        with pytest.raises(pocket.BadToken) as ei:
            job.deregister()
        assert not isinstance(ei.value, pocket.DropError) and not job._retired
        assert job.get("v") == b"live"
        job.put("w", b"x")
        cl.controller.deregister_job = real
        job.deregister()


def _compat_job(c: HelperCluster, monkeypatch, name: str) -> tuple[str, list[str], list[str]]:
    """A job registered through the module API holding 12 persisted values,
    4 on each of its nodes, and its nodes in map order. (The names were
    out00..11 whatever the map: on the shared cluster, where other tests'
    jobs leave a node little spare and so a small weight, none of them
    fell on the node a test then read from, in one full run of 2026-12-02.)"""
    monkeypatch.setenv("POCKET_CONTROLLER", c.addr)
    monkeypatch.delenv("POCKET_TLS_DIR", raising=False)
    monkeypatch.delenv("POCKET_CREDENTIAL", raising=False)
    jobid = pocket.register_job(name, num_lambdas=120)
    assert jobid, pocket.last_error()
    p = pocket.connect("", 0)
    job = p.resolve(jobid, "")[0]
    names: list[str] = []
    per: dict[str, int] = {}
    for i in range(2000):
        n = f"out{i:04d}"
        owner = _owner(job, p.resolve(jobid, n)[1])
        if per.get(owner, 0) < 4:
            names.append(n)
            per[owner] = per.get(owner, 0) + 1
        if len(names) == 12:
            break
    assert len(names) == 12, per
    for n in names:
        assert pocket.put_buffer(p, b"kept", 4, n, jobid, PERSIST_AFTER_JOB=True) == 0, pocket.last_error()
    nodes = [n.addr for n in p.resolve(jobid, "")[0].map.nodes]
    pocket.close(p)
    assert len(nodes) == 3
    return jobid, names, nodes


def _reads_as_ended(jobid: str, names: list[str], healthy: str) -> None:
    """A new handle reads the job as an ended one's: its persisted values
    on the healthy node read back (through the credential the process
    kept: the job's token is gone)."""
    assert pocket.job_token(jobid) is None
    q = pocket.connect("", 0)
    job = q.resolve(jobid, "")[0]
    assert job._retired
    on = [n for n in names if _owner(job, q.resolve(jobid, n)[1]) == healthy]
    assert on
    for n in on:
        b = bytearray(4)
        assert pocket.get_buffer(q, n, b, 4, jobid) == 0, pocket.last_error()
        assert b == b"kept"
    pocket.close(q)


def test_compat_dead_node_is_no_failure(steady_cluster, monkeypatch):
    c = steady_cluster
    jobid, names, nodes = _compat_job(c, monkeypatch, "compat-dead")
    c.command(f"kill {nodes[0]}")
    c.command(f"dead {nodes[0]}")
    assert pocket.deregister_job(jobid) == 0, pocket.last_error()
    _reads_as_ended(jobid, names, nodes[1])


def test_compat_live_node_failure_ends_the_job(steady_cluster, monkeypatch):
    """deregister_job returns -1 with the DropError, and the process reads
    the job as deregistered all the same."""
    c = steady_cluster
    jobid, names, nodes = _compat_job(c, monkeypatch, "compat-live")
    c.command(f"kill {nodes[0]}")
    c.command(f"dead {nodes[0]}")
    c.command(f"kill {nodes[1]}")
    assert pocket.deregister_job(jobid) == -1
    assert isinstance(pocket.last_error(), pocket.DropError), pocket.last_error()
    _reads_as_ended(jobid, names, nodes[2])
