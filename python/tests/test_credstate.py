"""A deregistered job's credential finds its persisted values after a drain
(the Go SDK's pocket/credstate_test.go and persistdrain_test.go).

Two rules, each pinned here by a test that fails on the old client:

- Job.deregister (and the compat layer's deregister_job) fetches the job's
  map first. A handle that had not met a drain of one of its map's nodes
  kept the old map, so the live job's persisted values, which the drain
  moved, read as Unavailable through the handle and its credential once
  the drained node had stopped.
- A credential records which nodes of its map drain or join (optional
  "draining": true / "joining": true per node, in the Go SDK's format;
  older credentials open as before), so its reads route as the live
  job's did. The controller hands out the map naming a node draining
  until every node has confirmed the next epoch: a credential taken then
  without the states routed reads to the drained node as the values'
  owner, and once it left they read as Unavailable.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

import pocket
from pocket import client as pclient
from pocket import wire

from conftest import HelperCluster

X, Y, Z = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"  # never dialled

# A credential as the Go SDK writes it (pocket/credstate_test.go's).
GO_CRED_JSON = ('{"job":"j-1","token":"AQI=","tier":1,"epoch":7,"nodes":[{"ID":"127.0.0.1:7001","Weight":2},'
                '{"ID":"127.0.0.1:7002","Weight":0.5,"draining":true},{"ID":"127.0.0.1:7003","Weight":1,"joining":true}]}')


def encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cred: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(cred + "=" * (-len(cred) % 4)))


def states(m: wire.PlacementMap) -> list[tuple[str, float, int]]:
    return [(n.addr, n.weight, n.state) for n in m.nodes]


@pytest.fixture
def offline(monkeypatch):
    """A client without a controller: credentials open as deregistered
    jobs' without asking anyone."""
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    with pocket.Client(insecure=True) as cl:
        yield cl


def test_credential_keeps_node_states(offline):
    j = offline.open_credential(encode(GO_CRED_JSON))
    assert states(j.map) == [(X, 2.0, wire.NODE_ACTIVE), (Y, 0.5, wire.NODE_DRAINING), (Z, 1.0, wire.NODE_JOINING)]
    assert j.map.epoch == 7 and j.token == b"\x01\x02" and j.id == "j-1"
    # Written back in the same format: the states only where set.
    nodes = decode(j.credential())["nodes"]
    assert nodes == [{"ID": X, "Weight": 2.0}, {"ID": Y, "Weight": 0.5, "draining": True},
                     {"ID": Z, "Weight": 1.0, "joining": True}]
    assert states(offline.open_credential(j.credential()).map) == states(j.map)


def test_older_credentials_open_as_before(offline):
    old = ('{"job":"j-2","token":"AQI=","tier":1,"epoch":3,"nodes":[{"ID":"127.0.0.1:7001","Weight":1},'
           '{"ID":"127.0.0.1:7002","Weight":1,"draining":null,"joining":false}]}')
    j = offline.open_credential(encode(old))
    assert states(j.map) == [(X, 1.0, wire.NODE_ACTIVE), (Y, 1.0, wire.NODE_ACTIVE)]
    assert j._st.settled
    assert decode(j.credential())["nodes"] == [{"ID": X, "Weight": 1.0}, {"ID": Y, "Weight": 1.0}]


@pytest.mark.parametrize("node, why", [
    ('{"ID":"127.0.0.1:7002","Weight":1,"draining":"yes"}', "draining is 'yes'"),
    ('{"ID":"127.0.0.1:7002","Weight":1,"joining":1}', "joining is 1"),
    ('{"ID":"127.0.0.1:7002","Weight":1,"draining":true,"joining":true}', "both draining and joining"),
])
def test_bad_node_states_are_refused(offline, node, why):
    cred = encode('{"job":"j-3","token":"AQI=","tier":1,"epoch":1,"nodes":[{"ID":"127.0.0.1:7001","Weight":1},'
                  + node + "]}")
    with pytest.raises(pocket.BadToken) as ei:
        offline.open_credential(cred)
    assert why in str(ei.value) and "127.0.0.1:7002" in str(ei.value)


@pytest.mark.parametrize("state", [wire.NODE_DRAINING, wire.NODE_JOINING])
def test_credential_routes_as_the_live_map(offline, state):
    """Every key's owner and old owner, the version movers and the listing
    phases are the same through the credential as through the job."""
    m = wire.PlacementMap("j-4", wire.TIER_DRAM, 9,
                          [wire.MapNode(X, 1.0), wire.MapNode(Y, 1.0, state), wire.MapNode(Z, 2.0)], b"tok")
    live = pclient.Job(offline, m)
    opened = offline.open_credential(live.credential())
    routes = [live._st.route(f"k/{i}".encode(), 0) for i in range(300)]
    assert [opened._st.route(f"k/{i}".encode(), 0) for i in range(300)] == routes
    # The map moves values: some keys have an old owner, which the old
    # credential's settled map never asked.
    assert any(old for _, old in routes)
    assert opened._st.movers == live._st.movers and opened._st.phases == live._st.phases


class _DeregController:
    """A stand-in controller whose map is `now`, recording the requests."""

    def __init__(self, now: wire.PlacementMap, fail: pocket.PocketError | None = None):
        self.now, self.fail, self.calls = now, fail, []

    def get_map(self, job, token):
        self.calls.append(("get_map", job))
        if self.fail is not None:
            raise self.fail
        return self.now

    def deregister_job(self, job, token):
        self.calls.append(("deregister_job", job))
        return wire.DropResult(len(self.now.nodes), 0, 0, 0, "")

    def close(self):
        pass


def test_deregister_fetches_the_map(offline):
    stale = wire.PlacementMap("j-5", wire.TIER_DRAM, 4, [wire.MapNode(X, 1.0), wire.MapNode(Y, 1.0)], b"tok")
    now = wire.PlacementMap("j-5", wire.TIER_DRAM, 6, [wire.MapNode(X, 1.0), wire.MapNode(Z, 1.0, wire.NODE_JOINING)],
                            b"tok")
    offline.controller = _DeregController(now)
    j = pclient.Job(offline, stale)
    j.deregister()
    assert offline.controller.calls == [("get_map", "j-5"), ("deregister_job", "j-5")]
    assert j.map.epoch == 6 and j._retired
    assert decode(j.credential())["nodes"] == [{"ID": X, "Weight": 1.0}, {"ID": Z, "Weight": 1.0, "joining": True}]


def test_deregister_reports_a_failed_fetch(offline):
    """A fetch that fails (the controller unreachable) leaves the job
    registered and says why; one the controller refuses as unknown or
    revoked goes on to the deregistration, which reports it."""
    m = wire.PlacementMap("j-6", wire.TIER_DRAM, 4, [wire.MapNode(X, 1.0)], b"tok")
    offline.controller = _DeregController(m, pocket.Unavailable("controller down"))
    j = pclient.Job(offline, m)
    with pytest.raises(pocket.Unavailable, match="deregister j-6: fetching the job's map: controller down"):
        j.deregister()
    assert offline.controller.calls == [("get_map", "j-6")] and not j._retired
    offline.controller = _DeregController(m, pocket.Revoked("expired"))
    j.deregister()
    assert offline.controller.calls == [("get_map", "j-6"), ("deregister_job", "j-6")] and j._retired


# ---- both languages ----

def go_credential(bins, cred: str) -> dict:
    p = subprocess.run([bins["gohelper"], "credential"], input=cred.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def test_go_and_python_read_each_others_states(bins, offline):
    m = wire.PlacementMap("j-7", wire.TIER_NVME, 12, [wire.MapNode(X, 1.5), wire.MapNode(Y, 1.0, wire.NODE_DRAINING),
                                                      wire.MapNode(Z, 0.25, wire.NODE_JOINING)], b"\x00secret\xff")
    got = go_credential(bins, pclient.Job(offline, m).credential())
    assert got["job"] == "j-7" and got["epoch"] == 12
    assert got["nodes"] == [{"addr": X, "weight": 1.5, "draining": False, "joining": False},
                            {"addr": Y, "weight": 1.0, "draining": True, "joining": False},
                            {"addr": Z, "weight": 0.25, "draining": False, "joining": True}]
    # Go's credential of the job it opened: the same map in Python.
    back = offline.open_credential(got["credential"])
    assert states(back.map) == states(m) and back.token == m.token and back.map.tier == wire.TIER_NVME
    assert decode(got["credential"])["nodes"][1] == {"ID": Y, "Weight": 1, "draining": True}
    # The Go SDK's own test credential opens the same in both.
    go = go_credential(bins, encode(GO_CRED_JSON))
    py = offline.open_credential(encode(GO_CRED_JSON))
    assert [(n["addr"], n["weight"], n["draining"], n["joining"]) for n in go["nodes"]] == \
        [(n.addr, n.weight, n.state == wire.NODE_DRAINING, n.state == wire.NODE_JOINING) for n in py.map.nodes]


# ---- a drain under a live job, then its deregistration ----

KEYS = 30


@pytest.fixture
def drain_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, "10m")
    yield c
    c.stop()


def _values(n: int) -> dict[str, bytes]:
    return {f"kept/{i:03d}": b"value of kept/%03d " % i + os.urandom(16) for i in range(n)}


def _victim(job: pocket.Job, keys) -> str:
    """A node of the job's map that owns some of keys."""
    owners = {job._st.route(k.encode(), 0)[0] for k in keys}
    assert len(job.map.nodes) == 3 and len(owners) == 3, job.map
    return job.map.nodes[0].addr


def test_drain_moves_live_jobs_persisted_values(drain_cluster):
    """A live job's persisted values move with its other values when their
    node drains, and stay readable through the handle and its credential
    after the job ends, though the handle never met the drain. On the old
    client those the drained node held read as Unavailable."""
    c = drain_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job = cl.register_job("live", lambdas=120)
        vals = _values(KEYS)
        for k, v in vals.items():
            job.put(k, v, persist=True)
        victim = _victim(job, vals)
        assert c.command(f"drain {victim}") == "ok"
        job.deregister()  # the handle's map still names the victim active
        cred = job.credential()
        assert all(n.addr != victim or n.state == wire.NODE_DRAINING for n in job.map.nodes), job.map
        with pocket.Client(insecure=True) as offline:
            handles = {"handle": job, "credential": cl.open_credential(cred),
                       "credential, no controller": offline.open_credential(cred)}
            for name, h in handles.items():
                missing = [k for k, v in vals.items() if _get(h, k) != v]
                assert not missing, f"through the {name}, {len(missing)} of {KEYS} lost: {missing[:5]}"


def _get(job: pocket.Job, key: str):
    try:
        return bytes(job.get(key))
    except pocket.PocketError as e:
        return e


def test_compat_deregister_after_a_drain(drain_cluster, monkeypatch):
    """The compat layer: a handle that put persisted values, a drain its
    job never met, deregister_job; the same handle and a new one read
    every value. On the old client the handle kept its map and read the
    drained node's values as unavailable (-1)."""
    c = drain_cluster
    for k in ("POCKET_TOKEN", "POCKET_JOB", "POCKET_CREDENTIAL", "POCKET_TLS_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("POCKET_CONTROLLER", c.addr)
    jobid = pocket.register_job("compat-drain", num_lambdas=120)
    assert jobid, pocket.last_error()
    p = pocket.connect("", 0)
    vals = _values(KEYS)
    for k, v in vals.items():
        assert pocket.put_buffer(p, v, len(v), k, jobid, PERSIST_AFTER_JOB=True) == 0, pocket.last_error()
    victim = _victim(p._job(jobid), vals)
    assert c.command(f"drain {victim}") == "ok"
    assert pocket.deregister_job(jobid) == 0, pocket.last_error()
    q = pocket.connect("", 0)
    for name, h in (("the handle that put them", p), ("a new handle", q)):
        missing = []
        for k, v in vals.items():
            b = bytearray(len(v))
            if pocket.get_buffer(h, k, b, len(v), jobid) != 0 or bytes(b) != v:
                missing.append(f"{k}: {pocket.last_error()!r}")
        assert not missing, f"through {name}, {len(missing)} of {KEYS} lost: {missing[:3]}"
    pocket.close(p)
    pocket.close(q)


def test_credential_keeps_lost_nodes(offline):
    """A credential carries the map's lost nodes and each node's since
    epoch, so a key a lost node held answers Lost through it too, as
    through the job (the Go SDK's TestCredentialKeepsLostNodes); before,
    they were dropped and such keys read NotFound."""
    m = wire.PlacementMap("j-9", wire.TIER_DRAM, 9, [wire.MapNode(X, 1.0), wire.MapNode(Y, 1.0, since=7)], b"tok",
                          lost=[wire.LostNode(Z, 1.0, 5)])
    live = pclient.Job(offline, m)
    opened = offline.open_credential(live.credential())
    assert opened.map.lost == m.lost and [n.since for n in opened.map.nodes] == [0, 7]
    keys = [f"k/{i}".encode() for i in range(300)]
    owners = [live._st.lost_owners(k, 0) for k in keys]
    assert sum(bool(o) for o in owners) > 50
    assert [opened._st.lost_owners(k, 0) for k in keys] == owners
