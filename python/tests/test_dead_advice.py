"""A put or get of a key whose node the map marks dead (killed, within the
controller's grace) raises Unavailable saying when to retry: once the
controller declares the node lost (its --dead-node-grace, 30 s by
default) and takes it out of the map, puts go to the other nodes and gets
answer lost. Before, "node X is dead" and nothing else. The Go SDK says
the same (pocket/route.go, deadNodeAdvice). The cluster is the Go
helper's (gohelper cluster)."""

from __future__ import annotations

import pytest

import pocket
from pocket import wire

from conftest import HelperCluster, wait_for


@pytest.fixture
def helper_cluster(bins):
    c = HelperCluster(bins["gohelper"], 2, "1h")  # dead nodes stay in the maps
    yield c
    c.stop()


def test_dead_node_error_says_when_to_retry(helper_cluster):
    c = helper_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job = cl.register_job("dead-advice", lambdas=80)
        assert len(job.map.nodes) == 2
        victim = c.nodes[0]
        st = job._st
        key = next(k for k in (f"k{i}" for i in range(1000)) if st.addrs[st.set.pick(k.encode(), 0)] == victim)
        job.put(key, b"v")
        c.command(f"kill {victim}")

        def dead_in_map() -> bool:
            m = cl._ctl().get_map(job.id, job.token)
            return any(n.addr == victim and n.state == wire.NODE_DEAD for n in m.nodes)
        assert wait_for(dead_in_map, 20), "the killed node was never marked dead"
        job.refresh()
        for op in (lambda: job.put(key, b"w"), lambda: job.get(key)):
            with pytest.raises(pocket.Unavailable) as e:
                op()
            msg = str(e.value)
            assert f"node {victim} is dead: " in msg, msg
            assert "until the controller declares it lost" in msg and "--dead-node-grace, 30 s by default" in msg, msg
            assert "retry then" in msg and "puts go to the job's other nodes" in msg, msg
