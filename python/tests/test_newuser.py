"""What a new user met: the TLS directory found where the Go CLI finds it,
a plain connection that the controller closes explained, a standby
controller's address followed to the active one, job_token for jobs of
the Pythonic API, and a node's data port given as the controller's address
explained."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import ssl
import threading
from pathlib import Path

import flatbuffers
import pytest

import pocket
from pocket import control, wire
from pocket.fb import Response as fbResponse
from conftest import wait_for


def test_default_tls_dir_order(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("POCKET_DATA_DIR", str(data))
    monkeypatch.delenv("POCKET_TLS_DIR", raising=False)
    assert control.default_tls_dir() is None  # no DATA/tls/ca.pem
    (data / "tls").mkdir(parents=True)
    (data / "tls" / "ca.pem").write_text("x")
    assert control.default_tls_dir() == str(data / "tls")
    monkeypatch.setenv("POCKET_TLS_DIR", "/elsewhere")
    assert control.default_tls_dir() == "/elsewhere"
    monkeypatch.delenv("POCKET_TLS_DIR")
    monkeypatch.delenv("POCKET_DATA_DIR")
    home = tmp_path / "home"
    (home / ".pocket" / "tls").mkdir(parents=True)
    (home / ".pocket" / "tls" / "ca.pem").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    assert control.default_tls_dir() == str(home / ".pocket" / "tls")


def test_client_finds_tls_in_the_data_dir(cluster, tmp_path, monkeypatch):
    """Without POCKET_TLS_DIR the client uses DATA/tls, as the Go CLI does
    (before: plain TCP, and the controller closed the connection)."""
    data = tmp_path / "data"
    shutil.copytree(cluster.tls_dir, data / "tls")
    monkeypatch.delenv("POCKET_TLS_DIR", raising=False)
    monkeypatch.setenv("POCKET_DATA_DIR", str(data))
    with pocket.Client(cluster.addr) as c:
        with c.register_job("data-dir-tls") as j:
            j.put("k", b"v")
            assert j.get("k") == b"v"


def test_plain_connection_closed_says_tls(cluster):
    """A registration over plain TCP to the TLS controller fails definitely
    (the controller never read it), naming POCKET_TLS_DIR; before, it was
    OutcomeUnknown, "the controller may have registered the job"."""
    with pocket.Client(cluster.addr, insecure=True) as c:
        with pytest.raises(pocket.PocketError) as e:
            c.register_job("no-tls")
    assert not isinstance(e.value, pocket.OutcomeUnknown), str(e.value)
    assert "serves TLS" in str(e.value) and "did nothing" in str(e.value), str(e.value)
    assert "set POCKET_TLS_DIR" in str(e.value) and "may have registered" not in str(e.value), str(e.value)


def test_plain_map_fetch_says_tls_at_once(cluster):
    """A map fetch (idempotent, so waited for while the controller is
    away) over plain TCP to the TLS controller fails at once, naming
    POCKET_TLS_DIR; before, it was waited for until ``wait`` (15 s) and
    raised Unavailable (a new user's trial)."""
    with pocket.Client(cluster.addr, insecure=True, controller_wait=60.0) as c:
        with pytest.raises(pocket.PocketError) as e:
            c.open_job("job-1", b"x" * 16)
    assert not isinstance(e.value, pocket.Unavailable), str(e.value)
    assert "serves TLS" in str(e.value) and "set POCKET_TLS_DIR" in str(e.value), str(e.value)


def test_node_data_port_given_as_the_controller_says_so(cluster, cluster_env, monkeypatch):
    """A node's data port where the (TLS) controller is expected: the
    handshake reads the node's plain pocket frame, and the error was
    OpenSSL's bare "[SSL: WRONG_VERSION_NUMBER] wrong version number", an
    Unavailable. It says now what the Go CLI says (a storage node's data
    port, or a controller started with --insecure), keeps OpenSSL's error
    chained, and is no Unavailable (retrying cannot cure it)."""
    node = cluster.nodes[0]
    with pocket.Client(node, tls_dir=cluster.tls_dir) as c:
        with pytest.raises(pocket.PocketError) as e:
            c.register_job("at-a-node")
    msg = str(e.value)
    assert f"controller {node}: [SSL: WRONG_VERSION_NUMBER]" in msg, msg
    assert "speaks pocket's protocol over plain TCP" in msg and "a storage node's data port" in msg, msg
    assert "give the controller's address" in msg and "--insecure" in msg, msg
    assert isinstance(e.value.__cause__, ssl.SSLError) and not isinstance(e.value, pocket.Unavailable)
    # The module API, with POCKET_CONTROLLER naming the node.
    monkeypatch.setenv("POCKET_CONTROLLER", node)
    assert pocket.register_job("at-a-node") is None
    assert "a storage node's data port" in str(pocket.last_error()), pocket.last_error()


def test_server_speaking_neither_tls_nor_pocket(cluster):
    """A server answering the handshake with neither TLS nor pocket's
    frames (here an HTTP error) is named as such, as the Go CLI does."""
    ln = socket.create_server(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % ln.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = ln.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pocket.Client(addr, tls_dir=cluster.tls_dir) as c:
            with pytest.raises(pocket.PocketError) as e:
                c.register_job("at-http")
    finally:
        ln.close()
        t.join(5)
    assert "does not speak TLS, nor pocket's protocol: is it the controller's address?" in str(e.value), str(e.value)
    assert isinstance(e.value.__cause__, ssl.SSLError)


def test_job_token_of_the_pythonic_api(client):
    j = client.register_job("token-of")
    assert pocket.job_token(j.id) == j.token_hex
    j.deregister()
    assert pocket.job_token(j.id) is None


class Standby:
    """A controller that answers every request "not leader", naming
    leader (plain TCP, loopback); it stops with the test."""

    def __init__(self, leader: str):
        self.leader = leader
        self.hits = 0
        self.ln = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.ln.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn):
        f = conn.makefile("rb")
        while True:
            hb = f.read(wire.HEADER_LEN)
            if len(hb) < wire.HEADER_LEN:
                return
            _, _, op, _, _, req_id, meta_len, _ = wire._HEADER.unpack(hb)
            f.read(meta_len)
            self.hits += 1
            b = flatbuffers.Builder(64)
            msg = b.CreateString(self.leader)
            fbResponse.ResponseStart(b)
            fbResponse.ResponseAddMessage(b, msg)
            b.Finish(fbResponse.ResponseEnd(b))
            meta = bytes(b.Output())
            conn.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, req_id, len(meta), 0, pocket.Code.NOT_LEADER) + meta)

    def close(self):
        self.ln.close()
        self.t.join(5)


@pytest.fixture
def standby(request):
    made = []

    def make(leader):
        s = Standby(leader)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def test_standby_address_follows_the_leader(insecure_cluster, standby):
    s = standby(insecure_cluster.addr)
    with pocket.Client(s.addr, insecure=True) as c:
        with c.register_job("via-standby") as j:
            j.put("k", b"v")
            assert j.get("k") == b"v"
        assert c.controller.addr == insecure_cluster.addr
    assert s.hits == 1


def test_standby_without_leader_says_election(standby):
    s = standby("")
    with pocket.Client(s.addr, insecure=True) as c:
        with pytest.raises(pocket.NotLeader) as e:
            c.register_job("no-leader")
    assert e.value.code == pocket.Code.NOT_LEADER == 24
    assert control.NO_LEADER_HINT in str(e.value)


def test_refused_client_certificate_fails_at_once(cluster, bins, tmp_path):
    """A client whose certificate the controller refuses (another
    cluster's CA) fails at once, saying so; before, open_job and
    register_job each waited the client's 15 s and raised Unavailable
    (a hostile re-check)."""
    other = tmp_path / "other"
    proc = subprocess.Popen([bins["pocket"], "controller", "--data-dir", str(other), "--listen", "127.0.0.1:0",
                             "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_for(lambda: (other / "tls" / "client-key.pem").exists(), 20), "no second CA made"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(Path(cluster.tls_dir) / "ca.pem", mixed / "ca.pem")
    for f in ("client.pem", "client-key.pem"):
        shutil.copy(other / "tls" / f, mixed / f)
    with pocket.Client(cluster.addr, tls_dir=str(mixed), controller_wait=60.0) as c:
        with pytest.raises(pocket.PocketError) as e:
            c.register_job("stranger")
    assert not isinstance(e.value, pocket.Unavailable), str(e.value)
    assert "refused this client's TLS certificate" in str(e.value), str(e.value)


def test_tls_dir_without_the_client_certificate_names_it(tmp_path):
    """A TLS directory holding the CA alone names the files it lacks; before,
    a bare "[Errno 2]" raised as a bad token (a new user's trial), which an
    ``except pocket.BadToken`` missed."""
    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(pocket.PocketError) as e:
        control.tls_context(str(tmp_path))
    assert not isinstance(e.value, pocket.BadToken), str(e.value)
    assert e.value.code == pocket.Code.UNSUPPORTED, str(e.value)
    assert "client.pem or client-key.pem" in str(e.value), str(e.value)


def test_error_code_is_a_code():
    """``.code`` is a pocket.Code, as the README says (it was an int), and a
    code this client does not know stays its number."""
    e = pocket.NotFound("x")
    assert isinstance(e.code, pocket.Code) and e.code is pocket.Code.NOT_FOUND and e.code == 5
    assert pocket.PocketError("y", 99).code == 99
