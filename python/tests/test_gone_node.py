"""A node of an ended job's frozen map (its credential) is gone for good:
killed after the job's deregistration. The credential lists and counts what
the other nodes hold, a read or delete of a value that was on the gone node
raises Lost naming it (not Unavailable, which reads as "retry"), a
recursive delete succeeds, and a deleted key whose node forgot the job
(answers revoked) reads as NotFound. Before, every listing, count and
recursive delete raised Unavailable for good (the Go SDK's gone.go;
TestEndedJobOverRetiredNode)."""

from __future__ import annotations

import pytest

import pocket
from pocket import errors, wire

from conftest import HelperCluster, wait_for


@pytest.fixture
def helper_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, "300ms")
    yield c
    c.stop()


def _owner(job: pocket.Job, key: str) -> str:
    st = job._st
    return st.addrs[st.set.pick(key.encode(), 0)]


def _ended_over(cl: pocket.Client, c: HelperCluster, name: str, d: str) -> tuple:
    """Registers job name over the cluster's 3 nodes, persists 24 values
    under d/, and deregisters it. Returns its credential, the first node
    (the victim), and the keys on it and elsewhere."""
    job = cl.register_job(name, lambdas=120)
    assert len(job.map.nodes) == 3
    keys = [f"{d}/{i:03d}" for i in range(24)]
    for k in keys:
        job.put(k, b"value of " + k.encode(), persist=True)
    cred = job.credential()
    job.deregister()
    victim = c.nodes[0]
    on = [k for k in keys if _owner(job, k) == victim]
    kept = [k for k in keys if _owner(job, k) != victim]
    assert on and kept, "the test needs keys on the victim and elsewhere"
    return cred, victim, on, kept


def test_ended_job_over_gone_node(helper_cluster):
    c = helper_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        cred, victim, on, kept = _ended_over(cl, c, "gone", "kept")
        c.command(f"kill {victim}")

        left = cl.open_credential(cred)
        assert [e.name for e in left.list("kept/")] == kept
        assert left.gone_nodes() == [victim]
        assert left.count_files("kept") == len(kept)
        for k in kept:
            assert left.get(k) == b"value of " + k.encode()
        with pytest.raises(pocket.Lost, match=victim):
            left.get(on[0])
        with pytest.raises(pocket.Lost):
            left.delete(on[0])

        fresh = cl.open_credential(cred)
        fresh.remove_all("kept")
        assert fresh.list("") == []

        # The remaining nodes hold nothing of the job now: once they forget
        # it they answer revoked, which for a key means "not found".
        other = _owner(fresh, kept[0])

        def forgot() -> bool:
            st = fresh._st
            return fresh._send_once(other, wire.OP_LIST, st.tier_flags, st.keyless()).code == errors.Code.REVOKED
        assert wait_for(forgot, 10.0), "the remaining node did not forget the ended job"
        with pytest.raises(pocket.NotFound):
            fresh.get(kept[0])
        with pytest.raises(pocket.NotFound):
            fresh.delete(kept[0])
        assert fresh.list("") == []


def test_ended_job_node_restarted_reads_lost(helper_cluster):
    """A node of an ended job's final map restarts (a new process at its
    address) after reporting the job's persisted values: the controller
    names it lost in the final map, and a credential opened since reads its
    keys as Lost, not NotFound (the Go SDK's
    TestEndedJobsValuesReadLostAfterTheirNodeRestarts). On the old code
    they read NotFound and a listing of what was left looked complete."""
    c = helper_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        cred, victim, on, kept = _ended_over(cl, c, "restarted", "out")
        c.command(f"kill {victim}")
        c.command(f"start {victim}")

        def named_lost() -> bool:
            return any(n.addr == victim for n in cl.open_credential(cred).map.lost)
        assert wait_for(named_lost, 15.0), "the final map never named the restarted node lost"
        left = cl.open_credential(cred)
        with pytest.raises(pocket.Lost, match=victim):
            left.get(on[0])
        for k in kept:
            assert left.get(k) == b"value of " + k.encode()


def test_ended_job_only_node_restarted_reads_lost(bins):
    """An ended job's only node restarts: the final map names no node, only
    a lost one. A credential opens on it (also the one such a Job hands
    on), reads raise Lost and a listing is empty (the Go SDK's
    TestEndedJobWhoseOnlyNodeRestartedReadsLost). Before, such a map was
    refused: "job has no nodes"."""
    c = HelperCluster(bins["gohelper"], 1, "300ms")
    try:
        with pocket.Client(c.addr, insecure=True) as cl:
            job = cl.register_job("only")
            job.put("out/0", b"v", persist=True)
            cred = job.credential()
            job.deregister()
            victim = c.nodes[0]
            c.command(f"kill {victim}")
            c.command(f"start {victim}")

            def all_lost() -> bool:
                m = cl.open_credential(cred).map
                return not m.nodes and [n.addr for n in m.lost] == [victim]
            assert wait_for(all_lost, 15.0), "the final map never named its only node lost"
            left = cl.open_credential(cred)
            again = cl.open_credential(left.credential())
            for j in (left, again):
                with pytest.raises(pocket.Lost, match=victim):
                    j.get("out/0")
                assert j.list("") == []
                # Puts, small or chunked, are refused as to an ended job
                # (before, a chunked one raised IndexError).
                for size in (1, 3 * cl.chunk_size):
                    with pytest.raises(pocket.Revoked, match="no node of its final map"):
                        j.put("x", b"y" * size, persist=True)
    finally:
        c.stop()
