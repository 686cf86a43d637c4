"""One format, both languages: a value written by the Go SDK reads back
byte-exact in Python and the reverse, for one-record and chunked values."""

import os
import subprocess

import pytest

MiB = 1 << 20
SIZES = [0, 1000, MiB, MiB + 1, 3 * MiB + 4321]


def gohelper(bins, cluster, job, *args):
    env = dict(os.environ, **cluster.env(), POCKET_TOKEN=job.token_hex)
    p = subprocess.run([bins["gohelper"], *args], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


@pytest.mark.parametrize("size", SIZES)
def test_go_writes_python_reads(bins, cluster, job, tmp_path, size):
    v = os.urandom(size)
    (tmp_path / "in").write_bytes(v)
    gohelper(bins, cluster, job, "put", job.id, f"go/{size}", str(tmp_path / "in"))
    assert job.get(f"go/{size}") == v
    with job.open(f"go/{size}") as r:
        assert r.read() == v


@pytest.mark.parametrize("size", SIZES)
def test_python_writes_go_reads(bins, cluster, job, tmp_path, size):
    v = os.urandom(size)
    job.put(f"py/{size}", v)
    gohelper(bins, cluster, job, "get", job.id, f"py/{size}", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == v


def test_go_replaces_a_python_object(bins, cluster, job, tmp_path):
    """Versions interleave across languages: each replaces the other whole."""
    job.put("both", os.urandom(3 * MiB))
    v = os.urandom(2 * MiB + 3)
    (tmp_path / "in").write_bytes(v)
    gohelper(bins, cluster, job, "put", job.id, "both", str(tmp_path / "in"))
    assert job.get("both") == v
    w = os.urandom(MiB + 9)
    job.put("both", w)
    gohelper(bins, cluster, job, "get", job.id, "both", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == w
