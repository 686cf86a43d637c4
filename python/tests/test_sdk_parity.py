"""What the Go SDK and the CLI give that the Python client lacked.

- Job.deregister's DropResult carries the bytes of persisted values the
  job's nodes still hold and the credential, as ``pocket job deregister``
  reports them (the same count: the ended job's usage over the
  deregistration's map); before, only the controller's drop counts.
- Job.usage (the Go SDK's Job.Usage). An ended job's usage fan-out took a
  node's "revoked" (it kept none of the job's values) for an error: usage
  of a deregistered job spread over several nodes raised Revoked on the old
  code, where the Go SDK counts such a node as 0.
- pocket.job_credential(jobid): the module API had no way to the
  credential of a job it deregistered, to hand on as POCKET_CREDENTIAL;
  pocket.credential_job was not exported.
- Job.put_file / get_file, a read stream's size and a write stream's
  abort (the Go SDK's PutFile, GetFile, Reader.Size, Writer.Abort).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pocket
from pocket import wire

REPO = Path(__file__).resolve().parents[2]
BIG = 200 * 1024  # chunked with the tests' 64 KiB chunks


def _spread_job(c, name):
    """A job on all 3 nodes of the cluster (3 x 8000 Mb/s)."""
    j = c.register_job(name, peak_mbps=24000)
    assert len(j.map.nodes) == 3, j.map
    return j


def _fill(j):
    """Persisted "out" (4 bytes) and "big" (BIG bytes, chunked), and a
    temporary "tmp"; returns the persisted values."""
    big = os.urandom(BIG)
    j.put("out", b"kept", persist=True)
    j.put("big", big, persist=True)
    j.put("tmp", os.urandom(BIG))
    return {"out": b"kept", "big": big}


def test_deregister_reports_persisted_bytes_as_the_cli(cluster, bins):
    """The Python count equals the CLI's for the same contents, and covers
    exactly the persisted values: the temporary value's bytes are gone."""
    with cluster.client(chunk_size=64 * 1024) as c:
        j = _spread_job(c, "parity-drop")
        kept = _fill(j)
        before = j.usage()
        res = j.deregister()
        assert res.nodes == 3 and res.failed == 0 and res.dead_nodes() == [] and res.other_failures() == []
        assert res.count_error == ""
        # The bytes the nodes held are those they freed and those they
        # kept (usage counts what the values take in the nodes' slabs, so
        # more than their lengths).
        # What the nodes kept is the persisted values, the temporary one's
        # bytes gone. (res.values and res.bytes count what the controller's
        # drop order freed; a node that heard of the revocation first has
        # dropped the job on its own and reports less, down to 0 when every
        # node heard first, as a loaded run saw once: not compared.)
        assert BIG + 4 <= res.persisted_bytes <= before - BIG
        assert pocket.credential_job(res.credential) == j.id
        assert res.credential not in repr(res)  # a secret, kept out of logs

        # The same contents deregistered by `pocket job deregister`.
        other = _spread_job(c, "parity-drop-cli")
        for k, v in kept.items():
            other.put(k, v, persist=True)
        other.put("tmp", os.urandom(BIG))
        env = dict(os.environ, **cluster.env(), POCKET_TOKEN=other.token_hex)
        out = subprocess.run([bins["pocket"], "job", "deregister", "--json", other.id], env=env,
                             capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        cli = json.loads(out.stdout)
        assert cli["persisted_bytes"] == res.persisted_bytes

        # The credential reads the persisted values from another client.
        with cluster.client(chunk_size=64 * 1024) as c2:
            ended = c2.open_credential(res.credential)
            assert ended.get("out") == b"kept" and ended.get("big") == kept["big"]
            assert not ended.exists("tmp")
            ended.delete_all()
            assert ended.usage() == 0


def test_deregister_without_persisted_values(client):
    j = _spread_job(client, "parity-nothing-kept")
    j.put("tmp", b"x" * 100)
    res = j.deregister()
    assert res.persisted_bytes == 0 and res.count_error == ""
    j2 = _spread_job(client, "parity-not-asked")
    j2.put("out", b"kept", persist=True)
    u = j2.usage()
    assert u >= 4
    res2 = j2.deregister(count_persisted=False)
    assert res2.persisted_bytes is None and "not asked" in res2.count_error
    assert j2.usage() == u  # asked now
    j2.delete_all()


def test_usage_of_an_ended_job_counts_nodes_holding_none(cluster, monkeypatch):
    """One small persisted value lives on one node of three: the two others
    kept none of the job's values and answer revoked, which counts as 0
    (the old code raised Revoked)."""
    with cluster.client() as c:
        j = _spread_job(c, "parity-usage")
        j.put("one", b"12345", persist=True)
        u = j.usage()  # 5 bytes in a slab of the node that holds them
        assert u >= 5
        cred = j.credential()
        j.deregister(count_persisted=False)
        assert j.usage() == u
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    with pocket.Client("") as offline:  # no controller: the credential's map alone
        ended = offline.open_credential(cred)
        assert ended.usage() == u
        ended.delete("one")
        assert ended.usage() == 0


def test_job_credential_module_api(cluster_env, tmp_path):
    """A launcher using the module API hands the credential of the job it
    deregistered to another process, which reads the persisted value
    through POCKET_CREDENTIAL."""
    assert pocket.job_credential("parity-nosuch-1") is None
    assert isinstance(pocket.last_error(), pocket.BadToken)

    jobid = pocket.register_job("parity-compat", peakMbps=24000)
    assert jobid
    live = pocket.job_credential(jobid)
    assert live and pocket.credential_job(live) == jobid
    p = pocket.connect("", 0)
    assert pocket.put_buffer(p, b"kept", 4, "out", jobid, PERSIST_AFTER_JOB=True) == 0, pocket.last_error()
    assert pocket.put_buffer(p, b"temp", 4, "tmp", jobid) == 0
    assert pocket.deregister_job(jobid) == 0, pocket.last_error()
    pocket.close(p)
    cred = pocket.job_credential(jobid)
    assert cred and pocket.credential_job(cred) == jobid
    code = ("import pocket, sys\n"
            "p = pocket.connect('', 0)\n"
            f"b = bytearray(4); assert pocket.get_buffer(p, 'out', b, 4, {jobid!r}) == 0, pocket.last_error()\n"
            f"assert pocket.lookup(p, 'tmp', {jobid!r}) == -1\n"
            f"assert pocket.job_credential({jobid!r}) == {cred!r}\n"
            f"assert pocket.delete(p, 'out', {jobid!r}) == 0, pocket.last_error()\n"
            "sys.stdout.write(b.decode())\n")
    env = dict(os.environ, **cluster_env, POCKET_CREDENTIAL=cred, PYTHONPATH=str(REPO / "python"))
    env.pop("POCKET_TOKEN", None)
    env.pop("POCKET_JOB", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"kept"


def test_files_size_and_abort(cluster, tmp_path):
    # parallel=2: a write stream sends its chunks once two are full.
    with cluster.client(chunk_size=64 * 1024, parallel=2) as c, c.register_job("parity-files") as j:
        src, dst = tmp_path / "src", tmp_path / "dst"
        data = os.urandom(BIG + 17)
        src.write_bytes(data)
        j.put_file(src, "f", persist=True)
        assert j.stat("f") == pocket.Info(len(data), True)
        with j.open("f") as r:
            assert r.size == len(data)
            assert r.read() == data
        j.put("small", b"abc")
        with j.open("small") as r:
            assert r.size == 3

        dst.write_bytes(b"old")
        j.get_file("f", dst, delete_after_read=True)
        assert dst.read_bytes() == data
        assert not j.exists("f")
        dst.write_bytes(b"old")
        with pytest.raises(pocket.NotFound):
            j.get_file("f", dst)
        assert dst.read_bytes() == b"old"  # a failed download leaves dst
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # and no temporary file

        # An aborted stream publishes nothing: the older value stays, and
        # the chunks it wrote are dropped.
        j.put("v", b"older")
        used = j.usage()
        w = j.open("v", "wb")
        w.write(os.urandom(BIG))  # past two full chunks: they are on the nodes
        assert j.usage() >= used + 2 * 64 * 1024
        w.abort()
        assert w.closed
        assert j.get("v") == b"older"
        assert j.usage() == used


def test_drop_result_dead_nodes():
    """DropResult splits its failures as the CLI's dropFailures does."""
    for msg, failed, dead, others in [
        ("", 0, [], []),
        ("127.0.0.1:7001: node dead", 1, ["127.0.0.1:7001"], []),
        ("[::1]:7001: node dead; drop job j at 127.0.0.1:7002: connection refused", 2,
         ["[::1]:7001"], ["drop job j at 127.0.0.1:7002: connection refused"]),
        ("drop job j at 127.0.0.1:7002: node dead", 1, [], ["drop job j at 127.0.0.1:7002: node dead"]),
        ("x; 127.0.0.1:7001: node dead", 1, [], ["x; 127.0.0.1:7001: node dead"]),
    ]:
        r = wire.DropResult(1, failed, 0, 0, msg)
        assert (r.dead_nodes(), r.other_failures()) == (dead, others), msg
