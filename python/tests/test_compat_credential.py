"""The compat layer reads a deregistered job's persisted values with
POCKET_CREDENTIAL, as the Go compat layer does.

On the old code another process (or another handle of the process that
deregistered the job) had no way to the job's PERSIST_AFTER_JOB values:
get / get_buffer looked the job up by token, and the controller no longer
knows it (-1, BadToken or UnknownJob).
"""

import os
import subprocess
import sys
from pathlib import Path

import pocket

REPO = Path(__file__).resolve().parents[2]


def _persisted_job(cluster):
    """A deregistered job holding the persisted "out" (4 bytes) and
    having dropped "tmp"; its id and credential."""
    with cluster.client() as c:
        j = c.register_job("compat-cred")
        j.put("out", b"kept", persist=True)
        j.put("dir/one", b"1", persist=True)
        j.put("tmp", b"gone")
        cred = j.credential()
        j.deregister()
    return j.id, cred


def test_credential_in_another_process(cluster, cluster_env, tmp_path):
    jobid, cred = _persisted_job(cluster)
    dst = tmp_path / "out.bin"
    code = ("import pocket, sys\n"
            "p = pocket.connect('', 0)\n"
            f"b = bytearray(4); assert pocket.get_buffer(p, 'out', b, 4, {jobid!r}) == 0, pocket.last_error()\n"
            f"assert pocket.get(p, 'out', {str(dst)!r}, {jobid!r}) == 0, pocket.last_error()\n"
            f"assert pocket.count_files(p, 'dir', {jobid!r}) == 1, pocket.last_error()\n"
            f"assert pocket.lookup(p, 'tmp', {jobid!r}) == -1\n"
            f"assert pocket.put_buffer(p, b'x', 1, 'new', {jobid!r}) == -1\n"  # read-only
            f"assert pocket.delete(p, 'out', {jobid!r}) == 0, pocket.last_error()\n"  # the persisted values go
            f"assert pocket.delete(p, 'dir', {jobid!r}) == 0, pocket.last_error()\n"
            f"assert pocket.lookup(p, 'out', {jobid!r}) == -1\n"
            "sys.stdout.write(b.decode())\n")
    env = dict(os.environ, **cluster_env, POCKET_CREDENTIAL=cred, PYTHONPATH=str(REPO / "python"))
    env.pop("POCKET_TOKEN", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"kept"
    assert dst.read_bytes() == b"kept"


def test_credential_of_another_job_is_not_used(cluster, cluster_env, monkeypatch):
    jobid, cred = _persisted_job(cluster)
    with cluster.client() as c:
        other = c.register_job("compat-cred-other")
        other.put("out", b"othr")
        monkeypatch.setenv("POCKET_TOKEN", other.token_hex)
        monkeypatch.setenv("POCKET_JOB", other.id)
        monkeypatch.setenv("POCKET_CREDENTIAL", cred)  # names jobid, not other
        p = pocket.connect("", 0)
        b = bytearray(4)
        assert pocket.get_buffer(p, "out", b, 4, other.id) == 0, pocket.last_error()
        assert b == b"othr"
        assert pocket.get_buffer(p, "out", b, 4, jobid) == 0 and b == b"kept"
        assert pocket.delete(p, "out", jobid) == 0 and pocket.delete(p, "dir", jobid) == 0
        pocket.close(p)
        other.deregister()


def test_new_handle_after_deregister_job(cluster_env):
    """A handle connected after deregister_job in the same process reads
    the persisted values (the process keeps the job's credential)."""
    jobid = pocket.register_job("compat-cred-here")
    p = pocket.connect("", 0)
    assert pocket.put_buffer(p, b"kept", 4, "out", jobid, PERSIST_AFTER_JOB=True) == 0
    assert pocket.deregister_job(jobid) == 0
    pocket.close(p)
    q = pocket.connect("", 0)
    b = bytearray(4)
    assert pocket.get_buffer(q, "out", b, 4, jobid) == 0, pocket.last_error()
    assert b == b"kept"
    assert pocket.delete(q, "out", jobid) == 0
    assert pocket.close(q) == 0


def test_malformed_credential_is_an_error(monkeypatch):
    """A POCKET_CREDENTIAL that is not a credential (here the whole export
    line, captured) fails the call naming it, as the Go compat layer and
    CLI do; on the old code it was ignored and the call went on to "no
    token". No cluster is needed: the check comes first."""
    monkeypatch.setenv("POCKET_CREDENTIAL", "export POCKET_CREDENTIAL=eyJq")
    assert pocket.job_credential("job-1") is None
    assert "POCKET_CREDENTIAL is not a job credential" in str(pocket.last_error())
