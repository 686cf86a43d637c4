"""A node an ended job's dead marks name is suspect, not dead (the Go SDK's
pocket/credential_dead_test.go, TestCredentialDeadMarkOfAReturnedNode).

The marks are hints: a credential's "dead": true, and the nodes the
controller named dead at the job's deregistration (its heartbeats had
stopped: a partition, a stalled agent). Such a node may serve on, or come
back, with the job's persisted values. Before, the handle and the
credential skipped it: a persisted value on it read as Lost ("recompute
it") while the job's token read it. Now a request still tries a suspect
node; one that answers is an ordinary node again. (A suspect node that
refuses connections is found gone at its first dial:
test_deregister_dead.py.)

The helper's controller marks no node dead by itself (dead after an hour).
"""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

import pocket

from conftest import HelperCluster


@pytest.fixture
def steady_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, "-1s", "1h")
    yield c
    c.stop()


def _persisted_job(cl: pocket.Client, name: str) -> tuple[pocket.Job, str, str]:
    """A job holding persisted values p/NNN, a node of its map, and a key
    that node owns."""
    job = cl.register_job(name, lambdas=120)
    for i in range(30):
        job.put(f"p/{i:03d}", f"kept p/{i:03d}".encode(), persist=True)
    st = job._st
    x = st.addrs[0]
    keys = [k for k in (f"p/{i:03d}" for i in range(30)) if st.addrs[st.set.pick(k.encode(), 0)] == x]
    assert keys, f"no key on {x}"
    return job, x, keys[0]


def _mark_dead(cred: str, addr: str) -> str:
    """cred with the node at addr marked "dead": true, as a credential
    written after a deregistration that named it dead."""
    c = json.loads(base64.urlsafe_b64decode(cred + "=" * (-len(cred) % 4)))
    for n in c["nodes"]:
        if n["ID"] == addr:
            n["dead"] = True
    return base64.urlsafe_b64encode(json.dumps(c).encode()).decode().rstrip("=")


def _marked_dead(cred: str) -> list[str]:
    c = json.loads(base64.urlsafe_b64decode(cred + "=" * (-len(cred) % 4)))
    return [n["ID"] for n in c["nodes"] if n.get("dead")]


def test_credential_dead_mark_of_a_serving_node(steady_cluster, monkeypatch):
    c = steady_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job, x, k = _persisted_job(cl, "cred-suspect")
        job.deregister(count_persisted=False)
        cred = _mark_dead(job.credential(), x)
        assert _marked_dead(cred) == [x]
        # Through the controller (its final map is not newer: the
        # credential's map stands, mark included) and without one.
        monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
        with pocket.Client(insecure=True) as offline:
            for opener in (cl, offline):
                cj = opener.open_credential(cred)
                assert cj.ended
                assert cj.get(k) == f"kept {k}".encode(), f"{k} on the serving node {x}"
                assert cj.gone_nodes() == []
                # It answered: no longer suspect, and the credential it
                # hands on no longer marks it.
                assert _marked_dead(cj.credential()) == []
                assert len(cj.list("p/")) == 30


def test_deregistration_dead_node_that_serves(steady_cluster):
    c = steady_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job, x, k = _persisted_job(cl, "dereg-suspect")
        # The controller names x dead at the deregistration (it took x for
        # dead: its heartbeats had stopped), while x serves on.
        deregister_job = cl.controller.deregister_job

        def naming_x_dead(job_id, token):
            res = deregister_job(job_id, token)
            entries = ([res.message] if res.failed else []) + [f"{x}: node dead"]
            return dataclasses.replace(res, failed=res.failed + 1, message="; ".join(entries))
        cl.controller.deregister_job = naming_x_dead
        res = job.deregister()
        assert res.dead_nodes() == [x]
        assert _marked_dead(res.credential) == [x]  # as older readers expect
        assert job.get(k) == f"kept {k}".encode(), f"{k} on {x}, named dead by the deregistration"
        assert job.gone_nodes() == []
        assert len(job.list("p/")) == 30
        assert res.persisted_bytes and res.count_error == ""
        with pocket.Client(insecure=True) as offline:
            cj = offline.open_credential(res.credential)
            assert cj.get(k) == f"kept {k}".encode()
            assert cj.gone_nodes() == []
