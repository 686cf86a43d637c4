"""A job whose map has a dead node (killed, within the controller's grace)
is deregistered: the controller forgets the job and reports the dead node
as a failure ("ADDR: node dead"), whose copy of the job's values went with
it. The Go SDK's Job.Deregister succeeds and retires the job then, and
`pocket job deregister` exits 0 and counts the persisted values the live
nodes keep; Job.deregister must do the same, not raise Unavailable for a
job the controller no longer knows (which leaves the Job unretired, its
credential and count lost, and a second deregister answering UnknownJob).
The cluster is the Go helper's (gohelper cluster)."""

from __future__ import annotations

import pytest

import pocket
from pocket import wire

from conftest import HelperCluster, wait_for


@pytest.fixture
def helper_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, "1h")  # dead nodes stay in the maps
    yield c
    c.stop()


def _owner(job: pocket.Job, key: str) -> str:
    st = job._st
    return st.addrs[st.set.pick(key.encode(), 0)]


def test_deregister_with_a_dead_node(helper_cluster):
    c = helper_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job = cl.register_job("dead-dereg", lambdas=120)
        assert len(job.map.nodes) == 3
        keys = [f"kept/{i:03d}" for i in range(24)]
        for k in keys:
            job.put(k, b"value of " + k.encode(), persist=True)
        victim = c.nodes[0]
        kept = [k for k in keys if _owner(job, k) != victim]
        assert kept and len(kept) < len(keys), "the test needs keys on the victim and elsewhere"
        c.command(f"kill {victim}")

        def dead_in_map() -> bool:
            m = cl._ctl().get_map(job.id, job.token)
            return any(n.addr == victim and n.state == wire.NODE_DEAD for n in m.nodes)
        assert wait_for(dead_in_map, 20), "the killed node was never marked dead"

        res = job.deregister()  # the Go SDK's Deregister returns nil here
        assert res.dead_nodes() == [victim] and res.other_failures() == []
        assert res.count_error == "" and res.persisted_bytes > 0
        assert pocket.credential_job(res.credential) == job.id
        # The ended job reads what the live nodes kept.
        assert [e.name for e in job.list("kept/")] == kept
