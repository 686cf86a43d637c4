"""A closed Client refuses every call with pocket.Closed; its jobs refuse
their data calls (deregister still goes to the controller, so that a job
can always be ended).

A new user's trial (closed.py): after Client.close(), register_job still
registered a live job, whose put and get then failed with a bare
PocketError "closed: client closed"; a job opened before the close failed
the same way.
"""

import socket

import pytest

import pocket


def _closed_port() -> str:
    """An address nothing listens on: a call that dials it fails
    Unavailable, not Closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return addr


def test_closed_client_refuses_registration_and_opens():
    c = pocket.Client(_closed_port(), insecure=True, controller_wait=0)
    c.close()
    for name, call in [("register_job", lambda: c.register_job("closedtest", lambdas=1)),
                       ("open_job", lambda: c.open_job("j", b"\0" * 32)),
                       ("open_static", lambda: c.open_static("j", ["127.0.0.1:1"]))]:
        with pytest.raises(pocket.Closed, match="Client.close"):
            call()
        print(name, "refused")


def test_job_of_closed_client_refuses_calls():
    c = pocket.Client(_closed_port(), insecure=True, controller_wait=0)
    j = c.open_static("j", ["127.0.0.1:1"])
    c.close()
    for call in (lambda: j.put("k", b"v"), lambda: j.get("k"), lambda: j.delete("k")):
        with pytest.raises(pocket.Closed) as e:
            call()
        assert e.value.code == pocket.Code.CLOSED


def test_closed_code_has_its_class():
    assert type(pocket.errors.error_for(pocket.Code.CLOSED, "x")) is pocket.Closed
