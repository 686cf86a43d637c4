"""last_error() is the exception behind the last -1 (or None) the module
API returned to this thread: every call that succeeds clears it, connect
included (a new user's trial: a stale error showed after a successful
connect). A connect that fails raises, and last_error() is that error."""

from __future__ import annotations

import threading

import pocket


def _fail_once():
    assert pocket.deregister_job("no-such-job-1") == -1
    assert pocket.last_error() is not None


def test_connect_clears_last_error(cluster_env):
    _fail_once()
    p = pocket.connect("", 0)
    assert pocket.last_error() is None, repr(pocket.last_error())
    _fail_once()
    p2 = pocket.connect(*cluster_env["POCKET_CONTROLLER"].rsplit(":", 1))
    assert pocket.last_error() is None and p2.err is None
    assert pocket.close(p) == 0 and pocket.close(p2) == 0


def test_failed_connect_is_last_error(cluster_env, monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER")
    try:
        pocket.connect("", 0)
    except pocket.PocketError as e:
        assert pocket.last_error() is e
    else:
        raise AssertionError("connect without a controller succeeded")


def test_every_successful_call_clears_last_error(cluster_env, tmp_path):
    jobid = pocket.register_job("lasterr")
    assert jobid is not None, pocket.last_error()
    p = pocket.connect("", 0)
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    calls = [
        lambda: pocket.put_buffer(p, b"abc", 3, "k", jobid),
        lambda: pocket.get_buffer(p, "k", bytearray(3), 3, jobid),
        lambda: pocket.put(p, str(src), "f", jobid),
        lambda: pocket.get(p, "f", str(tmp_path / "dst"), jobid),
        lambda: pocket.lookup(p, "k", jobid),
        lambda: pocket.create_dir(p, "d", jobid),
        lambda: pocket.count_files(p, "d", jobid),
        lambda: pocket.delete(p, "f", jobid),
        lambda: pocket.job_credential(jobid),
    ]
    try:
        for i, call in enumerate(calls):
            _fail_once()
            assert call() not in (-1, None), (i, pocket.last_error())
            assert pocket.last_error() is None, (i, pocket.last_error())
    finally:
        _fail_once()
        assert pocket.deregister_job(jobid) == 0 and pocket.last_error() is None
        _fail_once()
        assert pocket.close(p) == 0 and pocket.last_error() is None


def test_last_error_is_per_thread(cluster_env):
    _fail_once()
    seen = []
    t = threading.Thread(target=lambda: (pocket.connect("", 0), seen.append(pocket.last_error())))
    t.start()
    t.join()
    assert seen == [None] and pocket.last_error() is not None
