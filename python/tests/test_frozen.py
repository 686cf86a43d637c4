"""A node that stops without closing its connections (SIGSTOP, frozen) is
never refused: requests to it only time out. A put that timed out is not
sent again (its outcome is unknown), but the client must still fetch the
map, which marks the node dead or has it left out, as the Go SDK's
TestFrozenNodeMapFetched; before, only a request that could be sent again
fetched it, so a job that only put kept waiting out the timeout on the
node for good."""

from __future__ import annotations

import socket
import threading

import pytest

import pocket
from pocket import client as pclient
from pocket import wire

from conftest import MapController


@pytest.fixture
def silent_node():
    """A listener that takes every connection's bytes and answers none."""
    ln = socket.socket()
    ln.bind(("127.0.0.1", 0))
    ln.listen(16)
    conns = []

    def serve():
        while True:
            try:
                c, _ = ln.accept()
            except OSError:
                return
            conns.append(c)
            threading.Thread(target=lambda: _drain(c), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    yield "127.0.0.1:%d" % ln.getsockname()[1]
    ln.close()
    for c in conns:
        c.close()


def _drain(c: socket.socket) -> None:
    try:
        while c.recv(1 << 16):
            pass
    except OSError:
        pass


def test_put_timed_out_fetches_map(silent_node, monkeypatch):
    monkeypatch.setattr(pclient, "_REFRESH_GAP", 0.0)
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 3, [wire.MapNode(silent_node, 1.0)], b"tok")
    with pocket.Client(insecure=True, timeout=0.3) as cl:
        job = pclient.Job(cl, m)
        cl.controller = MapController(m, 0)
        with pytest.raises(pocket.Unavailable, match="timed out"):
            job.put("k", b"v")
        assert cl.controller.calls == 1, "the map was not fetched after the put timed out"
        assert job.map.epoch == 4
