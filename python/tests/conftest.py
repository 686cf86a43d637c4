"""Test fixtures: a real cluster started with the built `pocket up` (mutual
TLS, three nodes) for the whole session, and stopped at its end; a second
one over plain TCP (--insecure) for the tests that ask for it.

The binaries are built from this repository with `go build` (POCKET_BIN and
POCKET_GOHELPER name prebuilt ones instead).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import pocket  # noqa: E402


def _build(out: Path, pkg: str, env_name: str) -> str:
    if os.environ.get(env_name):
        return os.environ[env_name]
    subprocess.run(["go", "build", "-o", str(out), pkg], cwd=REPO, check=True)
    return str(out)


@pytest.fixture(scope="session")
def bins(tmp_path_factory):
    d = tmp_path_factory.mktemp("bin")
    return {"pocket": _build(d / "pocket", "./tools/pocket", "POCKET_BIN"),
            "gohelper": _build(d / "gohelper", "./python/tests/gohelper", "POCKET_GOHELPER")}


class Cluster:
    """A `pocket up` process: controller address, node addresses and, with
    mutual TLS, the TLS directory."""

    def __init__(self, binary: str, root: Path, nodes: int, insecure: bool):
        self.root = root
        self.tls_dir = "" if insecure else str(root / "data" / "tls")
        self.log = open(root / "up.log", "wb")
        args = [binary, "up", "--listen", "127.0.0.1:0", "--nodes", str(nodes), "--dram", "1GiB",
                "--secret-file", str(root / "secret"), "--log-level", "warn"]
        args += ["--insecure"] if insecure else ["--data-dir", str(root / "data")]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        self.addr, self.nodes = self._await_up(nodes)

    def _await_up(self, n: int, timeout: float = 60.0):
        lines: list[str] = []
        done = threading.Event()

        def reader():
            for raw in self.proc.stdout:
                lines.append(raw.decode(errors="replace"))
                if lines[-1].startswith("point the other commands"):
                    done.set()
            done.set()
        threading.Thread(target=reader, daemon=True).start()
        if not done.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("pocket up did not come up: " + "".join(lines) + (self.root / "up.log").read_text())
        text = "".join(lines)
        addr = re.search(r"controller (\S+?),", text).group(1)
        nodes = re.findall(r"^  node (\S+)$", text, re.M)
        assert len(nodes) == n, text
        return addr, nodes

    def env(self) -> dict:
        """The environment the commands and the module API read."""
        e = {"POCKET_CONTROLLER": self.addr}
        if self.tls_dir:
            e["POCKET_TLS_DIR"] = self.tls_dir
        return e

    def client(self, **kw) -> pocket.Client:
        return pocket.Client(self.addr, tls_dir=self.tls_dir or None, insecure=not self.tls_dir, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def cluster(bins, tmp_path_factory):
    c = Cluster(bins["pocket"], tmp_path_factory.mktemp("cluster"), 3, insecure=False)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def insecure_cluster(bins, tmp_path_factory):
    c = Cluster(bins["pocket"], tmp_path_factory.mktemp("insecure"), 2, insecure=True)
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    with cluster.client() as c:
        yield c


@pytest.fixture
def job(client, request):
    j = client.register_job(re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40])
    yield j
    try:
        j.deregister()
    except pocket.PocketError:
        pass


@pytest.fixture(autouse=True)
def _no_default_tls(tmp_path_factory, monkeypatch):
    """The client's default TLS directory (DATA/tls, as the Go CLI's) comes
    from an empty POCKET_DATA_DIR, not this machine's ~/.pocket."""
    monkeypatch.setenv("POCKET_DATA_DIR", str(tmp_path_factory.mktemp("nodata")))


@pytest.fixture
def cluster_env(cluster, monkeypatch):
    """The module API's environment: POCKET_CONTROLLER and POCKET_TLS_DIR."""
    for k, v in cluster.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("POCKET_TOKEN", raising=False)
    monkeypatch.delenv("POCKET_JOB", raising=False)
    return cluster.env()


def usage(job: pocket.Job) -> int:
    """The bytes the job's nodes hold for it, summed (OpUsage's size; its
    count is the whole tier's, so not the job's)."""
    from pocket import wire
    return sum(r.response().size for r in job._fan_out(wire.OP_USAGE, 0))


def wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


class HelperCluster:
    """The Go helper's cluster (gohelper cluster NODES GRACE [DEADAFTER]):
    a controller and nodes in one process that kills and starts nodes,
    marks them dead, and grows and shrinks jobs' maps, on request."""

    def __init__(self, binary: str, nodes: int, grace: str, dead_after: str = ""):
        args = [binary, "cluster", str(nodes), grace] + ([dead_after] if dead_after else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.addr, self.nodes = "", []
        for line in self.proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "controller":
                self.addr = rest
            elif kind == "node":
                self.nodes.append(rest)
            elif kind == "ready":
                break
        assert self.addr and len(self.nodes) == nodes, "gohelper cluster did not come up"

    def command(self, line: str) -> str:
        """Runs one command; returns its answer ("ok" or a number)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer and not answer.startswith("error"), f"{line}: {answer}"
        return answer

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class MapController:
    """A stand-in controller that hands out the map m for its first
    `times` fetches, then m at the next epoch, counting the fetches."""

    def __init__(self, m, times):
        self.m, self.times, self.calls = m, times, 0

    def get_map(self, job, token):
        from pocket import wire
        self.calls += 1
        e = self.m.epoch + (self.calls > self.times)
        return wire.PlacementMap(self.m.job, self.m.tier, e, self.m.nodes, self.m.token)

    def close(self):
        pass


def pytest_sessionfinish(session, exitstatus):
    """The suite's clusters stop with it, and the jobs its tests left
    registered (on purpose: outcome-unknown and ended-elsewhere cases) go
    with them: the LiveJobsAtExit warning of this process (the one pytest
    runs in) would name them at exit for nothing. Tests of the warning run
    it in processes of their own (test_exit_warning.py)."""
    from pocket import client as _client
    with _client._tokens_lock:
        _client._live.clear()


def heard(job) -> None:
    """Makes every node of job's map hear of the job from its controller.
    A node that has not yet refuses the job's puts as a node behind would
    (for at most 300 ms, while it asks: dataplane's errPendingStore), and
    the client answers that by fetching the job's map, which replaces the
    crafted maps of the Jobs some tests build over the same job. A put and
    a delete of a key each node owns, through the job's own map, do it."""
    want = {n.addr for n in job.map.nodes}
    for i in range(100000):
        if not want:
            return
        key = f"heard-{i}"
        addr = job._st.route(key.encode(), 0)[0]
        if addr in want:
            job.put(key, b"x")
            job.delete(key)
            want.discard(addr)
    raise AssertionError(f"no key routes to {sorted(want)}")
