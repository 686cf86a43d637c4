"""A node drained away under a job: the Python client follows the map's
new epoch and finds every value where the drain moved it."""

import os
import subprocess

import pytest

from conftest import Cluster, wait_for

MiB = 1 << 20


@pytest.fixture(scope="module")
def drain_cluster(bins, tmp_path_factory):
    c = Cluster(bins["pocket"], tmp_path_factory.mktemp("drain"), 3, insecure=False)
    yield c
    c.stop()


def test_values_survive_a_drain(bins, drain_cluster):
    c = drain_cluster
    with c.client() as cl, cl.register_job("drain") as job:
        small = {f"s/{i}": os.urandom(100 + i) for i in range(60)}
        big = {f"b/{i}": os.urandom(2 * MiB + i) for i in range(2)}
        for k, v in {**small, **big}.items():
            job.put(k, v)
        epoch = job.map.epoch
        victim = job.map.nodes[0].addr  # a node of the job (it may use 2 of the 3)
        p = subprocess.run([bins["pocket"], "node", "drain", victim, "--controller", c.addr, "--secret-file",
                            str(c.root / "secret"), "--tls-dir", c.tls_dir, "--deadline", "60s"],
                           capture_output=True, timeout=90)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        # The job still routes with its old map: nodes answer "stale epoch",
        # or the drained node is gone; either way the client refreshes.
        for k, v in {**small, **big}.items():
            assert job.get(k) == v, k
        assert job.map.epoch > epoch
        # The controller publishes an epoch once every node of the map has
        # learned it: the map without the drained node may come a
        # heartbeat or two after the drain ends.
        assert wait_for(lambda: job.refresh() or victim not in [n.addr for n in job.map.nodes]), job.map
        job.put("after", os.urandom(3 * MiB))
        fresh = cl.open_job(job.id, job.token)
        assert fresh.get("b/1") == big["b/1"] and len(fresh.get("after")) == 3 * MiB
        assert fresh.count_files("s") == len(small)
