"""The note of the controller's registration reply (PlacementMap.note:
nodes the autoscaler started for the job did not come, say), which ``pocket
job register`` prints as "note: ..." and the Go SDK gives as
Allotment.Note, is the Job's ``note`` (with the rest of its allotment) and
is emitted as a pocket.RegistrationNote warning, through both APIs,
attributed to the caller's line. Before, a new user's trial registered a
job from Python and saw no sign of it."""

from __future__ import annotations

import os
import socket
import subprocess
import warnings

import pytest

import pocket
from pocket import control, wire

from conftest import Cluster

NOTE = "the autoscaler could not add 1 node(s) it wanted for the job (start: test): it is placed over the nodes there are"


@pytest.fixture
def noted_controller(monkeypatch):
    """Every registration's reply carries NOTE and an allotment."""
    def register_job(self, name, *args, **kw):
        a = wire.Allotment(mbps=600000.0, bytes=0, sized_from="hints", note=NOTE, quota_mbps=0.0)
        return wire.PlacementMap(f"{name}-1", wire.TIER_DRAM, 1, [wire.MapNode("127.0.0.1:1", 1.0)], b"tok",
                                 allotment=a)
    monkeypatch.setattr(control.Controller, "register_job", register_job)


def test_pythonic_register_warns_the_note(noted_controller):
    c = pocket.Client("127.0.0.1:1", insecure=True)
    with pytest.warns(pocket.RegistrationNote) as rec:
        job = c.register_job("pyjob3", lambdas=1000)
    assert len(rec) == 1
    w = rec[0]
    assert w.filename == __file__, w.filename  # the user's line, not the package's
    assert NOTE in str(w.message) and "pyjob3-1" in str(w.message)
    assert w.message.note == NOTE and w.message.job == "pyjob3-1"
    assert issubclass(pocket.RegistrationNote, UserWarning)
    assert job.note == NOTE
    assert job.allotment.mbps == 600000 and job.allotment.sized_from == "hints" and job.allotment.note == NOTE


def test_compat_register_warns_the_note(noted_controller, monkeypatch):
    monkeypatch.setenv("POCKET_CONTROLLER", "127.0.0.1:1")
    with pytest.warns(pocket.RegistrationNote, match="autoscaler could not add") as rec:
        jobid = pocket.register_job("pyjob3", num_lambdas=1000)
    assert jobid == "pyjob3-1", pocket.last_error()
    assert rec[0].filename == __file__, rec[0].filename


def test_no_note_no_warning(client):
    with warnings.catch_warnings():
        warnings.simplefilter("error", pocket.RegistrationNote)
        job = client.register_job("quiet", lambdas=1)
    try:
        assert job.note == "" and job.allotment.mbps == 600
    finally:
        job.deregister()


def _port_pair():
    """A port held open (so no node can take it) and the free one below it."""
    for _ in range(20):
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port - 1))
            return held, port - 1
        except OSError:
            held.close()
    pytest.skip("no free pair of ports")


class _AutoscaleCluster(Cluster):
    """pocket up --autoscale on one node, up to two, whose second node
    cannot start (its only port is held)."""

    def __init__(self, binary, root, free_port):
        self.root, self.tls_dir = root, ""
        self.log = open(root / "up.log", "wb")
        args = [binary, "up", "--insecure", "--listen", "127.0.0.1:0", "--autoscale", "--nodes", "1", "--max-nodes", "2",
                "--node-ports", f"{free_port}-{free_port + 1}", "--dram", "1GiB",
                "--secret-file", str(root / "secret"), "--log-level", "warn"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        self.addr, self.nodes = self._await_up(1)


def test_autoscaler_note_reaches_python(bins, tmp_path):
    """End to end: a job whose node the autoscaler could not start gets the
    controller's note, as `pocket job register` prints it."""
    held, free = _port_pair()
    try:
        c = _AutoscaleCluster(bins["pocket"], tmp_path, free)
        try:
            with c.client() as cl:
                with pytest.warns(pocket.RegistrationNote, match="could not add 1 node") as rec:
                    job = cl.register_job("pyjob3", peak_mbps=10000)
                assert "no free port" in job.note, job.note
                assert rec[0].message.note == job.note and job.allotment.mbps == 10000
                job.put("k", b"v")
                assert job.get("k") == b"v"
                job.deregister()
        finally:
            c.stop()
    finally:
        held.close()
