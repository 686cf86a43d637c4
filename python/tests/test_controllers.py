"""Several controllers: a list, a stopped one, a leader that dies.

A hostile trial of controller high availability found the Python client
took one address only (a comma-separated POCKET_CONTROLLER, as the README
tells clients to export, failed to parse as a host), never went back to the
standby it was given once the leader it had been sent to died (calls failed
after their whole wait), and waited its whole timeout on a stopped
controller (SIGSTOP: its kernel still accepts connections) without moving
on to the one elected in its place. The Go metaclient did the first two and
now does the third too (ErrUnresponsive).
"""

import socket
import time

import pytest

import pocket
from pocket import control

from test_control_outcome import _ReplyKiller
from test_newuser import Standby


@pytest.fixture
def stopped():
    """The address of a listener whose connections are never accepted: the
    kernel completes them and takes their bytes, nothing answers (a
    stopped controller process)."""
    ln = socket.create_server(("127.0.0.1", 0))
    yield "127.0.0.1:%d" % ln.getsockname()[1]
    ln.close()


def test_a_bad_controller_list_is_refused():
    for bad in ("a:1,", ",a:1", "a", "a:0", "a:x", ":7070"):
        with pytest.raises(pocket.PocketError) as e:
            pocket.Client(bad)
        assert "host:port" in str(e.value), bad
    assert control.parse_controllers(" 10.0.0.1:7070,b:1 ,10.0.0.1:7070") == ["10.0.0.1:7070", "b:1"]


def test_a_stopped_controller_listed_first_is_passed_over(insecure_cluster, stopped):
    with pocket.Client(f"{stopped},{insecure_cluster.addr}", insecure=True) as c:
        t0 = time.monotonic()
        with c.register_job("past-stopped") as j:
            took = time.monotonic() - t0
            assert c.controller.addr == insecure_cluster.addr
            j.put("k", b"v")
            assert c.open_job(j.id, j.token).get("k") == b"v"
    # Not its timeout (15 s): the stall probe's bound, with room for a
    # loaded machine.
    assert took < 10, f"registration took {took:.1f} s"


def test_a_stopped_tls_controller_listed_first_is_passed_over(cluster, stopped):
    with pocket.Client(f"{stopped},{cluster.addr}", tls_dir=cluster.tls_dir) as c:
        with c.register_job("past-stopped-tls") as j:
            assert c.controller.addr == cluster.addr
            assert j.id


def test_a_stopped_controller_alone_is_unresponsive(stopped):
    with pocket.Client(stopped, insecure=True, controller_wait=0) as c:
        with pytest.raises(pocket.Unavailable) as e:
            c.register_job("at-stopped")
    assert "answers nothing" in str(e.value), str(e.value)
    assert "the request was not sent" in str(e.value), str(e.value)


def test_calls_go_back_to_the_standby_when_the_leader_dies(insecure_cluster):
    """Given one standby, which names a leader, the client goes back to the
    standby when that leader dies, and on to the leader it names then."""
    leader = _ReplyKiller(insecure_cluster.addr)  # the first leader
    s = Standby(leader.addr)
    try:
        with pocket.Client(s.addr, insecure=True) as c:
            j = c.register_job("standby-back")
            assert c.controller.addr == leader.addr
            leader.close()  # it dies: no new connections,
            leader.kill.set()  # and what it had open ends unanswered
            s.leader = insecure_cluster.addr  # a new leader is elected
            t0 = time.monotonic()
            again = c.open_job(j.id, j.token)
            assert again.id == j.id
            assert c.controller.addr == insecure_cluster.addr
            assert time.monotonic() - t0 < 10
            j.deregister()
    finally:
        s.close()
        leader.close()
