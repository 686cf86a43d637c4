"""A deregistered job's handle while a node is still dropping the job's
temporary values: the node answers busy (it may hold persisted values,
readable once the drop ends), which the handle waits out in counts,
listings, gets and recursive deletes. A stand-in for the node's drop
answers busy to the first requests one node gets. The old client took
busy for an error (a listing raised Busy), and the old node answered
revoked instead, which the handle took for "none of its values here": a
count came up short while 400,000 temporary values were dropped.

A credential opened while its job is live gives a live handle (the
controller says so), whose revoked answers raise like any live handle's;
the old client opened every credential as a deregistered job's."""

import pytest

import pocket
from pocket import conn, errors

KEPT = 30


@pytest.fixture
def dropping(monkeypatch):
    """dropping(addr, n): the next n requests to the node at addr answer
    busy without reaching it; returns a list whose first item counts the
    busy answers given."""
    state = {"addr": "", "left": 0}
    given = [0]
    real = conn.NodeConn.roundtrip

    def roundtrip(self, op, flags, meta, payload=None, dst=None):
        if self.addr == state["addr"] and state["left"] > 0:
            state["left"] -= 1
            given[0] += 1
            return conn.Reply(0, 0, errors.Code.BUSY, b"", b"")
        return real(self, op, flags, meta, payload, dst)

    monkeypatch.setattr(conn.NodeConn, "roundtrip", roundtrip)

    def arm(addr: str, n: int) -> list:
        state["addr"], state["left"] = addr, n
        given[0] = 0
        return given
    return arm


def test_retired_handle_waits_out_a_dropping_node(client, dropping):
    j = client.register_job("retired-drop", lambdas=40)
    assert len(j.map.nodes) == 3
    names = [f"keep/{i:02d}" for i in range(KEPT)]
    for k in names:
        j.put(k, k.encode(), persist=True)
    for i in range(100):
        j.put(f"tmp/{i}", b"goes")
    cred = j.credential()
    j.deregister()
    left = client.open_credential(cred)
    node = j.map.nodes[0].addr
    for handle in (j, left):
        given = dropping(node, 8)
        assert handle.count_files("keep") == KEPT
        assert given[0] == 8
        given = dropping(node, 8)
        assert [e.name for e in handle.list("")] == names
        assert given[0] == 8
    for k in names:  # a key the dropping node holds
        given = dropping(node, 4)
        assert left.get(k) == k.encode()
        if given[0]:
            break
    else:
        pytest.fail("no persisted value on the first node")
    dropping(node, 8)
    left.remove_all("keep")
    assert left.list("") == []


def test_credential_of_a_live_job_is_live(client):
    j = client.register_job("cred-live", lambdas=40)
    j.put("keep", b"stays", persist=True)
    live = client.open_credential(j.credential())
    live.put("more", b"x")
    cred = j.credential()
    j.deregister()
    with pytest.raises(pocket.Revoked):
        live.list("")
    assert [e.name for e in client.open_credential(cred).list("")] == ["keep"]
