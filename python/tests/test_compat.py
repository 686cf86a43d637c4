"""Pocket's module API: names, arguments, defaults and 0 / -1 returns, used
the way Pocket's own examples used them."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

import pocket

MiB = 1 << 20


@pytest.fixture
def registered(cluster_env):
    jobid = pocket.register_job("compat", num_lambdas=2, capacityGB=1, peakMbps=100, latency_sensitive=1)
    assert jobid is not None, pocket.last_error()
    p = pocket.connect(*cluster_env["POCKET_CONTROLLER"].rsplit(":", 1))
    yield p, jobid
    pocket.deregister_job(jobid)
    pocket.close(p)


def test_register_returns_name_dash_int(registered):
    _, jobid = registered
    assert re.fullmatch(r"compat-\d+", jobid)


def test_put_buffer_get_buffer(registered):
    p, jobid = registered
    text = "a" * 1024
    assert pocket.put_buffer(p, text, len(text), "tmp-0", jobid) == 0
    back = bytearray(1024)
    assert pocket.get_buffer(p, "tmp-0", back, 1024, jobid) == 0
    assert back == text.encode()
    # Pocket's examples pass an immutable str to fill: the bytes go to last_value.
    text_back = " " * 1024
    assert pocket.get_buffer(p, "tmp-0", text_back, 1024, jobid) == 0
    assert p.last_value == text.encode()
    # The caller must know the length, as in Pocket.
    assert pocket.get_buffer(p, "tmp-0", bytearray(2048), 2048, jobid) == -1
    assert isinstance(pocket.last_error(), pocket.PocketError)
    assert pocket.get_buffer(p, "tmp-0", bytearray(10), 10, jobid) == -1
    assert pocket.lookup(p, "tmp-0", jobid) == 0  # a failed get_buffer deleted nothing


def test_put_buffer_length_is_a_prefix(registered):
    p, jobid = registered
    assert pocket.put_buffer(p, b"0123456789", 4, "pre", jobid) == 0
    out = bytearray(4)
    assert pocket.get_buffer(p, "pre", out, 4, jobid) == 0 and out == b"0123"
    assert pocket.put_buffer(p, b"abc", 5, "bad", jobid) == -1


@pytest.mark.parametrize("size", [0, 300, 2 * MiB + 77])
def test_files_round_trip_with_delete_after_read(registered, tmp_path, size):
    p, jobid = registered
    src = tmp_path / "src"
    data = os.urandom(size)
    src.write_bytes(data)
    assert pocket.put(p, str(src), "file", jobid) == 0
    assert pocket.get(p, "file", str(tmp_path / "dst"), jobid, DELETE_AFTER_READ=True) == 0
    assert (tmp_path / "dst").read_bytes() == data
    assert pocket.lookup(p, "file", jobid) == -1
    assert pocket.get(p, "file", str(tmp_path / "dst2"), jobid) == -1
    assert not (tmp_path / "dst2").exists()


def test_leading_slash_names_the_same_file(registered):
    p, jobid = registered
    assert pocket.put_buffer(p, b"v", 1, "/slash", jobid) == 0
    out = bytearray(1)
    assert pocket.get_buffer(p, "slash", out, 1, jobid) == 0 and out == b"v"
    assert pocket.lookup(p, "/slash", jobid) == 0


def test_dirs_count_and_recursive_delete(registered):
    p, jobid = registered
    assert pocket.create_dir(p, "shuffle", jobid) == 0
    for i in range(5):
        assert pocket.put_buffer(p, b"x", 1, f"shuffle/part-{i}", jobid) == 0
    assert pocket.create_dir(p, "shuffle/sub", jobid) == 0
    assert pocket.count_files(p, "shuffle", jobid) == 6
    assert pocket.lookup(p, "shuffle", jobid) == 0
    assert pocket.count_files(p, "nothing", jobid) == -1
    assert pocket.delete(p, "shuffle", jobid) == 0
    assert pocket.lookup(p, "shuffle/part-0", jobid) == -1
    assert pocket.put_buffer(p, b"y", 1, "top", jobid) == 0
    assert pocket.delete(p, "top", jobid) == 0
    assert pocket.lookup(p, "top", jobid) == -1


@pytest.mark.parametrize("name", ["", "/", "///"])
@pytest.mark.parametrize("default_job", [False, True])
def test_delete_of_no_name_does_not_wipe_the_job(registered, name, default_job):
    """delete(p, "", jobid) deleted every value of the job (an empty name
    variable wiped it): it fails now, as the CLI's `pocket rm J /` does,
    saying why, and deletes nothing. So under the default job (jobid "")."""
    p, jobid = registered
    assert pocket.put_buffer(p, b"y", 1, "top", jobid) == 0
    assert pocket.put_buffer(p, b"z", 1, "d/under", jobid) == 0
    assert pocket.delete(p, name, "" if default_job else jobid) == -1
    e = pocket.last_error()
    assert isinstance(e, pocket.BadKey) and p.err is e
    assert f"{name!r} names the whole job {jobid}" in str(e) and "delete_all()" in str(e), str(e)
    assert pocket.lookup(p, "top", jobid) == 0 and pocket.lookup(p, "d/under", jobid) == 0
    # A jobid that is a directory of the default job (Pocket's examples'
    # pattern) with an empty name still deletes that directory.
    assert pocket.delete(p, name, "d") == 0, pocket.last_error()
    assert pocket.lookup(p, "d/under", jobid) == -1 and pocket.lookup(p, "top", jobid) == 0


def test_put_buffer_str_is_never_cut(registered):
    """put_buffer(p, s, len(s), ...) of a non-ASCII str stored its first
    len(s) UTF-8 bytes, b'h\\xc3\\xa9ll' for "héllo" (len counts bytes, the
    user's len(s) characters), and returned 0. A str's len must be its
    UTF-8 length: anything else fails (-1, ValueError) and stores nothing."""
    p, jobid = registered
    s = "héllo"
    assert pocket.put_buffer(p, s, len(s), "s", jobid) == -1
    e = pocket.last_error()
    assert isinstance(e, ValueError), repr(e)
    assert "5 characters, 6 bytes, and len is 5" in str(e) and "len(s.encode())" in str(e), str(e)
    assert pocket.lookup(p, "s", jobid) == -1  # nothing stored
    assert pocket.put_buffer(p, s, 3, "s", jobid) == -1  # no cut of a str's bytes either
    assert pocket.lookup(p, "s", jobid) == -1
    assert pocket.put_buffer(p, s, len(s.encode()), "s", jobid) == 0
    out = bytearray(6)
    assert pocket.get_buffer(p, "s", out, 6, jobid) == 0 and out.decode() == s
    # bytes keep Pocket's prefix: the first len bytes.
    assert pocket.put_buffer(p, s.encode(), 3, "b", jobid) == 0
    assert pocket.get_buffer(p, "b", out, 3, jobid) == 0 and out[:3] == "hé".encode()


def test_get_buffer_length_mismatch_says_which_way(registered):
    """A value shorter than len read "pocket: too large: ... value is 0
    bytes, want 5": it says now that the value is shorter (longer) than
    len, as the Go compat layer's "value is N bytes, want M" does."""
    p, jobid = registered
    assert pocket.put_buffer(p, b"abcde", 5, "five", jobid) == 0
    assert pocket.put_buffer(p, b"", 0, "empty", jobid) == 0
    cases = [("five", bytearray(8), 8, "value is 5 bytes, shorter than len 8"),
             ("empty", bytearray(5), 5, "value is 0 bytes, shorter than len 5"),
             ("five", " " * 8, 8, "value is 5 bytes, shorter than len 8"),  # an immutable dst
             ("five", bytearray(3), 3, "value is 5 bytes, longer than len 3"),
             ("five", b"xyz", 3, "value is 5 bytes, longer than len 3")]
    for key, dst, n, want in cases:
        assert pocket.get_buffer(p, key, dst, n, jobid, DELETE_AFTER_READ=True) == -1
        e = pocket.last_error()
        assert isinstance(e, pocket.PocketError), repr(e)
        assert f"get_buffer {key!r}: {want}" in str(e) and "exact size" in str(e), str(e)
        assert "too large" not in str(e), str(e)
        assert e.code == (pocket.Code.TOO_LARGE if "longer" in want else pocket.Code.CONFLICT)
        assert pocket.lookup(p, key, jobid) == 0  # nothing deleted
    big = os.urandom(2 * MiB + 1)
    assert pocket.put_buffer(p, big, len(big), "big", jobid) == 0
    assert pocket.get_buffer(p, "big", bytearray(MiB), MiB, jobid) == -1
    e = pocket.last_error()
    assert isinstance(e, pocket.TooLarge), repr(e)
    assert f"get_buffer 'big': value of {len(big)} bytes does not fit" in str(e), str(e)


def test_pocket_latency_example_pattern(registered):
    """Pocket's microbenchmark: create_dir(p, dir, "") then use dir as the
    jobid: a directory of the job registered in this process."""
    p, jobid = registered
    d = "latency-testmicrobenchmark"
    assert pocket.create_dir(p, d, "") == 0
    assert pocket.put_buffer(p, "a" * 100, 100, "tmp-0", d) == 0
    assert pocket.lookup(p, "tmp-0", d) == 0
    assert pocket.count_files(p, d, "") == 1
    assert pocket.count_files(p, "", d) == 1
    j = p.client.open_job(jobid, pocket.compat._tokens[jobid])
    assert j.get(f"{d}/tmp-0") == b"a" * 100
    assert pocket.delete(p, "", d) == 0
    assert pocket.lookup(p, "tmp-0", d) == -1


def test_persist_after_job(cluster_env):
    jobid = pocket.register_job("persist")
    p = pocket.connect("", 0)
    assert pocket.put_buffer(p, b"kept", 4, "out", jobid, PERSIST_AFTER_JOB=True) == 0
    assert pocket.put_buffer(p, b"gone", 4, "tmp", jobid) == 0
    assert pocket.deregister_job(jobid) == 0
    out = bytearray(4)
    assert pocket.get_buffer(p, "out", out, 4, jobid) == 0 and out == b"kept"
    assert pocket.get_buffer(p, "tmp", bytearray(4), 4, jobid) == -1
    assert pocket.delete(p, "out", jobid) == 0
    assert pocket.close(p) == 0


def test_token_from_the_environment(registered, cluster_env):
    """Another process (not forked from this one) finds the job through
    POCKET_JOB and POCKET_TOKEN."""
    p, jobid = registered
    assert pocket.put_buffer(p, b"from-parent", 11, "msg", jobid) == 0
    tok = pocket.compat._tokens[jobid].hex()
    code = ("import pocket, sys\n"
            "p = pocket.connect('', 0)\n"
            f"b = bytearray(11); assert pocket.get_buffer(p, 'msg', b, 11, {jobid!r}) == 0, pocket.last_error()\n"
            f"assert pocket.put_buffer(p, b'from-child', 10, 'reply', {jobid!r}) == 0\n"
            "sys.stdout.write(b.decode())\n")
    env = dict(os.environ, **cluster_env, POCKET_JOB=jobid, POCKET_TOKEN=tok,
               PYTHONPATH=str(REPO / "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"from-parent"
    back = bytearray(10)
    assert pocket.get_buffer(p, "reply", back, 10, jobid) == 0 and back == b"from-child"


def test_errors_return_minus_one(cluster_env):
    p = pocket.connect("", 0)
    assert pocket.put_buffer(p, b"x", 1, "k", "no-such-job-1") == -1
    assert pocket.last_error() is not None and p.err is pocket.last_error()
    assert pocket.deregister_job("no-such-job-1") == -1
    assert pocket.close(p) == 0


def test_deregister_job_twice_says_it_ended(cluster_env):
    """A second deregister_job of a job this process deregistered says
    the job has ended already, as the CLI does (before: BadToken "no
    token ...: register it here or set POCKET_TOKEN")."""
    jobid = pocket.register_job("twice")
    assert jobid is not None, pocket.last_error()
    assert pocket.deregister_job(jobid) == 0
    assert pocket.deregister_job(jobid) == -1
    e = pocket.last_error()
    assert isinstance(e, pocket.UnknownJob), repr(e)
    assert "has ended already" in str(e) and "POCKET_TOKEN" not in str(e), str(e)
    assert pocket.job_credential(jobid) is not None  # its persisted values stay reachable


_FORK = {}  # the parent's handle and job, inherited by forked workers


def _forked_worker(i):
    p, jobid = _FORK["p"], _FORK["jobid"]
    data = f"worker-{i}".encode()
    assert pocket.put_buffer(p, data, len(data), f"fork/{i}", jobid) == 0, pocket.last_error()
    out = bytearray(len(data))
    assert pocket.get_buffer(p, f"fork/{i}", out, len(out), jobid) == 0, pocket.last_error()
    return bytes(out)


def test_forked_workers_share_the_parents_handle(registered):
    """Workers forked from the registering process (multiprocessing's
    default on Linux) use its handle and token; each gets its own
    connections."""
    import multiprocessing
    p, jobid = registered
    assert pocket.put_buffer(p, b"warm", 4, "warm", jobid) == 0  # the parent's pool holds connections
    _FORK.update(p=p, jobid=jobid)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        got = pool.map(_forked_worker, range(6))
    assert got == [f"worker-{i}".encode() for i in range(6)]
    assert pocket.count_files(p, "fork", jobid) == 6


def test_a_client_registered_job_is_a_job_not_a_directory(registered, cluster_env):
    """put_buffer given the id of a job registered with the Pythonic
    Client.register_job stores the value in that job, not under a
    directory of that name in the module API's job (registered here too);
    before, it did, and the job's own workers read not found (a new
    user's trial)."""
    p, module_job = registered
    with pocket.Client(cluster_env["POCKET_CONTROLLER"]) as c:
        with c.register_job("pyjob", lambdas=1) as b:
            assert pocket.put_buffer(p, b"data", 4, "x", b.id) == 0, pocket.last_error()
            assert b.get("x") == b"data"
            assert pocket.lookup(p, b.id + "/x", module_job) == -1  # nothing under a directory of the module job
            assert [e.name for e in b.list("")] == ["x"]
