"""The Pythonic API against a real cluster (pocket up, mutual TLS)."""

import dataclasses
import os
import threading

import pytest

from conftest import usage

import pocket
from pocket import client as pclient
from pocket import wire

MiB = 1 << 20


def test_small_put_get_round_trip(job):
    job.put("a", b"hello")
    assert job.get("a") == b"hello"
    job.put(b"b", bytearray(b"x" * 1024))
    assert job.get("b") == b"x" * 1024
    job.put("empty", b"")
    assert job.get("empty") == b""
    job.put("mv", memoryview(b"abcdef")[2:4])
    assert job.get("mv") == b"cd"


@pytest.mark.parametrize("size", [MiB, MiB + 1, 3 * MiB + 12345])
def test_chunked_round_trip(job, size):
    v = os.urandom(size)
    job.put("obj", v)
    assert job.get("obj") == v
    assert job.stat("obj").size == size
    buf = bytearray(size + 10)
    assert job.get_into("obj", buf) == size and buf[:size] == v


def test_replacing_values_leaks_nothing(job):
    """Replacing a chunked object by a record and the reverse, and deleting
    it, drops the replaced chunks: used bytes are the live values' bytes."""
    v = os.urandom(2 * MiB + 1)
    job.put("k", v)
    fresh = usage(job)  # the bytes one such object costs (keys counted)
    assert fresh >= len(v) + wire.MANIFEST_LEN
    job.delete("k")
    assert usage(job) == 0
    job.put("k", os.urandom(3 * MiB))
    job.put("k", v)
    assert usage(job) == fresh
    job.put("k", b"small")
    small = usage(job)
    assert 5 <= small < 100
    job.put("k", os.urandom(2 * MiB))
    job.put("k", b"small")
    assert usage(job) == small
    job.delete("k")
    assert usage(job) == 0


def test_get_into_too_small_raises_and_keeps_value(job):
    job.put("s", b"0123456789")
    with pytest.raises(pocket.TooLarge):
        job.get_into("s", bytearray(4), delete_after_read=True)
    job.put("big", os.urandom(2 * MiB))
    with pytest.raises(pocket.TooLarge) as ei:
        job.get_into("big", bytearray(MiB))
    assert ei.value.code == pocket.Code.TOO_LARGE
    assert job.get("s") == b"0123456789" and job.exists("big")
    with pytest.raises(TypeError):
        job.get_into("s", b"immutable!")


@pytest.mark.parametrize("size", [100, 2 * MiB + 7])
def test_delete_after_read(job, size):
    v = os.urandom(size)
    job.put("d", v)
    assert job.get("d", delete_after_read=True) == v
    assert not job.exists("d")
    job.put("d", v)
    buf = bytearray(size)
    assert job.get_into("d", buf, delete_after_read=True) == size and buf == v
    assert not job.exists("d")
    assert usage(job) == 0


def test_not_found_carries_the_wire_code(job):
    with pytest.raises(pocket.NotFound) as ei:
        job.get("missing")
    assert ei.value.code == pocket.Code.NOT_FOUND == 5
    with pytest.raises(pocket.NotFound):
        job.delete("missing")
    assert not job.exists("missing")


@pytest.mark.parametrize("name", ["", b"a\x00b", "x" * 1000])
def test_bad_names(job, name):
    with pytest.raises(pocket.BadKey):
        job.put(name, b"v")


def test_persist_flag(job):
    job.put("p", b"keep", persist=True)
    job.put("q", b"drop")
    assert job.stat("p").persist and not job.stat("q").persist


def test_directories(job):
    job.create_dir("d")
    job.create_dir("d/")  # exists: fine
    for k in ["d/x", "d/y", "d/sub/z"]:
        job.put(k, b"1")
    job.put("d/big", os.urandom(2 * MiB))
    assert job.count_files("d") == 4  # x, y, big, sub/
    assert [e.name for e in job.list("d/")] == ["d/", "d/big", "d/sub/z", "d/x", "d/y"]
    assert next(e for e in job.list("d/") if e.name == "d/big").size == 2 * MiB
    with pytest.raises(pocket.NotFound):
        job.count_files("nodir")
    job.remove_all("d")
    assert job.list() == [] and usage(job) == 0


@pytest.mark.parametrize("name", ["", "/", "//", b"", b"/", 0],
                         ids=["empty", "slash", "slashes", "bytes-empty", "bytes-slash", "zero"])
def test_remove_all_refuses_a_name_that_is_the_whole_job(job, monkeypatch, name):
    """remove_all of an empty name (or only slashes) deleted every value of
    the job, so a shuffle script with an empty prefix variable wiped it
    (0 too: bytes(0) is b""). It raises BadKey now, before anything is
    sent, pointing at delete_all(), as `pocket rm J /` asks for --all."""
    job.put("f0", b"x")
    job.put("d/f1", b"y")

    def sent(*a, **k):
        raise AssertionError("remove_all sent a prefix delete")
    monkeypatch.setattr(job, "_delete_prefix", sent)
    with pytest.raises(pocket.BadKey) as e:
        job.remove_all(name)
    assert e.value.code == pocket.Code.BAD_NAME
    if name != 0:
        shown = repr(name.decode() if isinstance(name, bytes) else name)  # a bytes name shown as its text
        assert f"remove_all({shown}): {shown} names the whole job: call delete_all() to delete every value of the job" \
            in str(e.value), str(e.value)
    monkeypatch.undo()
    assert [x.name for x in job.list()] == ["d/f1", "f0"]
    with pytest.raises(TypeError):
        job.remove_all()  # the name is required: its default was "", the whole job


def test_delete_all_deletes_every_value_of_the_job(job):
    """delete_all() is what remove_all("") did: every value and directory
    marker of the job, counted as remove_all counts them."""
    for i in range(20):
        job.put(f"f{i}", b"x")
    job.create_dir("d")
    job.put("d/big", os.urandom(2 * MiB))
    assert job.delete_all() == 22
    assert job.list() == [] and usage(job) == 0
    assert job.delete_all() == 0  # an empty job: nothing, no error


def test_streams(job):
    parts = [os.urandom(700_000) for _ in range(4)]
    with job.open("s", "wb") as w:
        for p in parts:
            w.write(p)
    with job.open("s") as r:
        assert r.read() == b"".join(parts)
    with job.open("small", "wb") as w:
        w.write(b"tiny")
    with job.open("small") as r:
        assert r.read(2) == b"ti" and r.read() == b"ny"
    for key, size in [("small", 4), ("s", 2_800_000)]:
        with job.open(key, delete_after_read=True) as r:
            assert len(r.read()) == size
        assert not job.exists(key)


def test_failed_stream_publishes_nothing(job):
    job.put("s", b"old")
    with pytest.raises(RuntimeError):
        with job.open("s", "wb") as w:
            w.write(os.urandom(3 * MiB))
            raise RuntimeError("writer fails")
    assert job.get("s") == b"old"
    assert usage(job) < 100


def test_threads_share_a_client(job):
    errs = []

    def worker(t):
        try:
            for i in range(50):
                v = f"{t}-{i}".encode() * 10
                job.put(f"t{t}/{i}", v)
                assert job.get(f"t{t}/{i}") == v
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs
    assert job.count_files("t3") == 50


def test_open_job_with_hex_token_and_wrong_token(client, job):
    job.put("shared", b"v")
    other = client.open_job(job.id, job.token_hex)
    assert other.get("shared") == b"v"
    with pytest.raises(pocket.PocketError) as ei:
        client.open_job(job.id, bytes(len(job.token)))
    assert ei.value.code in (pocket.Code.BAD_TOKEN, pocket.Code.UNKNOWN_JOB)


def test_persisted_values_outlive_the_job(client):
    j = client.register_job("persist")
    j.put("keep", b"persisted", persist=True)
    j.put("gone", b"x")
    cred = j.credential()
    j.deregister()
    assert j.get("keep") == b"persisted"
    again = client.open_credential(cred)
    assert again.get("keep") == b"persisted"
    with pytest.raises(pocket.PocketError):
        again.get("gone")
    again.delete("keep")


def test_job_context_manager_deregisters(client):
    with client.register_job("ctx") as j:
        j.put("k", b"v")
        tok = j.token
    assert j.ended
    # Its token opens it as an ended job (while the controller keeps its
    # final map), whose puts are refused, or not at all (UnknownJob).
    try:
        again = client.open_job(j.id, tok)
    except pocket.UnknownJob:
        return
    assert again.ended
    with pytest.raises(pocket.Revoked):
        again.put("k2", b"v")


def test_plain_tcp_cluster(insecure_cluster):
    with insecure_cluster.client() as c:
        with c.register_job("plain") as j:
            v = os.urandom(2 * MiB + 5)
            j.put("x", v)
            assert j.get("x") == v


def test_mutual_tls_is_required(cluster):
    with pocket.Client(cluster.addr, insecure=True) as c:
        with pytest.raises(pocket.PocketError):
            c.register_job("no-tls")


def test_remove_all_counts_what_it_deleted(job):
    """remove_all returns the names it deleted: name and those under name/,
    a chunked object once, not other names starting with name (the Go
    SDK's RemoveAllCount, pocket rm's count); 0 when nothing was there. It
    returned None, and nothing said what a recursive delete took."""
    for k in ["a", "a/b", "a/b/c", "ab"]:
        job.put(k, b"v")
    job.put("a/big", os.urandom(2 * MiB))
    assert [e.name for e in job.list("a")] == ["a", "a/b", "a/b/c", "a/big", "ab"]
    assert job.remove_all("a") == 4
    assert [e.name for e in job.list()] == ["ab"]
    assert job.remove_all("a") == 0
    assert job.delete_all() == 1


def test_list_says_which_nodes_it_missed(job):
    """A listing through a map that marks a node dead, or lists a node
    that left it dead, names them (Listing.dead, .lost, .partial; the Go
    SDK's Job.ListReport): it returned a plain list of the other nodes'
    names, and nothing said some were missing."""
    for i in range(30):
        job.put(f"k{i:02d}", b"v")
    whole = job.list()
    assert len(whole) == 30 and not whole.partial and whole == [e for e in whole]
    m = job.map
    dead = m.nodes[0].addr
    nodes = [dataclasses.replace(n, state=wire.NODE_DEAD) if n.addr == dead else n for n in m.nodes]
    lost = [wire.LostNode("127.0.0.1:1", 1.0, m.epoch)]
    seen = pclient.Job(job.client, dataclasses.replace(m, nodes=nodes, lost=lost)).list()
    assert seen.partial and seen.dead == [dead] and [n.addr for n in seen.lost] == ["127.0.0.1:1"]
    assert len(seen) < 30
