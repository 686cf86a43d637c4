"""Measures the Python client against its two targets (issue 13), in one
run on one machine:

- 1 KiB get and put latency (p50, p99) from Python, against redis-py's GET
  and SET on a local redis-server, each over a single connection;
- 64 MiB put and get throughput (MB/s, 10^6 bytes a second) from Python,
  against the Go SDK (python/tests/gohelper bench) on the same
  cluster.

It starts a redis-server on loopback, a local cluster (`pocket up
--insecure`) of --latency-nodes nodes (default 1, one server like
redis-server) for the latencies and then one of --nodes nodes (default 3)
for the throughput, and stops them. Latency rounds alternate Pocket
and Redis so that a noisy neighbour hurts both alike; the figures are the
median over rounds of each round's p50 and p99. Throughput is the median of
the rounds, with the best beside them. --node-latency
adds 1 KiB get latencies on the throughput cluster, per owning node. Usage:

    python3 python/bench/bench.py --pocket bin/pocket [--ops 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import pocket  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(binary: str, tmp: str, nodes: int):
    p = subprocess.Popen([binary, "up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", str(nodes), "--dram",
                          "1GiB", "--secret-file", os.path.join(tmp, "secret"), "--log-level", "warn"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    for raw in p.stdout:
        line = raw.decode()
        if line.startswith("pocket cluster up: controller "):
            return p, line.split()[4].rstrip(",")
    raise RuntimeError("pocket up did not start")


def start_redis(tmp: str):
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                          "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis
    r = redis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
    for _ in range(100):
        try:
            r.ping()
            return p, r
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def timed(fn, keys) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for k in keys:
        t = clock()
        fn(k)
        out.append(clock() - t)
    return out


def pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def latency(job, r, ops: int, rounds: int) -> dict:
    val = os.urandom(KiB)
    keys = [f"bench/key-{i:06d}" for i in range(ops)]
    bkeys = [k.encode() for k in keys]
    for k in keys[:500]:  # warm connections and code paths
        job.put(k, val)
        job.get(k)
        r.set(k, val)
        r.get(k)
    res: dict[str, list] = {n: [] for n in ("pocket_put", "pocket_get", "redis_set", "redis_get")}
    for _ in range(rounds):
        res["pocket_put"].append(timed(lambda k: job.put(k, val), bkeys))
        res["redis_set"].append(timed(lambda k: r.set(k, val), keys))
        res["pocket_get"].append(timed(job.get, bkeys))
        res["redis_get"].append(timed(r.get, keys))
    return {n: {"p50_us": round(statistics.median(pct(x, 0.5) for x in v), 1),
                "p99_us": round(statistics.median(pct(x, 0.99) for x in v), 1)} for n, v in res.items()}


def throughput(job, gohelper: str, ctl: str, size: int, rounds: int) -> dict:
    """MB/s of rounds of Python put, get (a buffer of its own) and get_into
    (a reused buffer) of one value, each round followed by a Go SDK round
    (gohelper bench: a fresh process, so its get too receives into memory
    new to it) on the same job, after one warm-up put that faults in the
    nodes' memory. Medians over the rounds, and the best."""
    val = os.urandom(size)
    buf = bytearray(size)
    job.put("bench/big", val)
    job.get_into("bench/big", buf)
    env = dict(os.environ, POCKET_CONTROLLER=ctl, POCKET_TOKEN=job.token_hex)
    env.pop("POCKET_TLS_DIR", None)
    runs: dict[str, list[float]] = {n: [] for n in ("put", "get", "get_into", "go_put", "go_get")}
    for _ in range(rounds):
        t0 = time.perf_counter()
        job.put("bench/big", val)
        t1 = time.perf_counter()
        got = job.get("bench/big")
        t2 = time.perf_counter()
        job.get_into("bench/big", buf)
        t3 = time.perf_counter()
        assert got == val and buf == val
        del got
        runs["put"].append(size / (t1 - t0) / 1e6)
        runs["get"].append(size / (t2 - t1) / 1e6)
        runs["get_into"].append(size / (t3 - t2) / 1e6)
        out = subprocess.run([gohelper, "bench", job.id, str(size), "1"], env=env, capture_output=True,
                             check=True, timeout=300)
        g = json.loads(out.stdout)
        runs["go_put"].append(g["put_mbps"])
        runs["go_get"].append(g["get_mbps"])
    med = {n: statistics.median(v) for n, v in runs.items()}
    res = {f"{n}_mbps": round(v) for n, v in med.items()}
    res |= {f"{n}_best_mbps": round(max(v)) for n, v in runs.items()}
    res |= {"put_ratio": round(med["put"] / med["go_put"], 2), "get_ratio": round(med["get"] / med["go_get"], 2),
            "get_into_ratio": round(med["get_into"] / med["go_get"], 2)}
    return res


def node_latency(job, gohelper: str, ctl: str, ops: int, rounds: int) -> dict:
    """1 KiB get p50 and p99 per owning node (keys grouped by the node of
    their chunk 0) and for all keys mixed, from Python, and for all keys
    mixed from the Go SDK (gohelper lat, after a warm-up pass in the same
    process), interleaved round by round; medians over rounds: whether a
    request's cost depends on which node answers, and whether Go pays the
    same."""
    val = os.urandom(KiB)
    prefix = "bench/node-"
    keys = [f"{prefix}{i:06d}".encode() for i in range(ops)]
    st = job._st
    by_node: dict[str, list[bytes]] = {}
    for k in keys:
        job.put(k, val)
        by_node.setdefault(st.addrs[st.set.pick(k, 0)], []).append(k)
    for k in keys[:500]:
        job.get(k)
    env = dict(os.environ, POCKET_CONTROLLER=ctl, POCKET_TOKEN=job.token_hex)
    env.pop("POCKET_TLS_DIR", None)
    res: dict[str, list] = {a: [] for a in by_node}
    res["all"], res["go_all"] = [], []
    for _ in range(rounds):
        res["all"].append(timed(job.get, keys))
        for a, ks in by_node.items():
            res[a].append(timed(job.get, ks))
        out = subprocess.run([gohelper, "lat", job.id, prefix, str(ops)], env=env, capture_output=True, check=True,
                             timeout=300)
        res["go_all"].append(json.loads(out.stdout))
    py = {n: {"p50_us": round(statistics.median(pct(x, 0.5) for x in v), 1),
              "p99_us": round(statistics.median(pct(x, 0.99) for x in v), 1)} for n, v in res.items() if n != "go_all"}
    py["go_all"] = {q: round(statistics.median(g[q] for g in res["go_all"]), 1) for q in ("p50_us", "p99_us")}
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description="Python client vs redis-py (1 KiB) and the Go SDK (64 MiB)")
    ap.add_argument("--pocket", default=str(REPO / "bin" / "pocket"), help="the pocket binary (make build)")
    ap.add_argument("--gohelper", default="", help="prebuilt gohelper (default: go build it)")
    ap.add_argument("--ops", type=int, default=5000, help="1 KiB operations per round and kind")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big", type=int, default=64 * MiB, help="bytes of the large value")
    ap.add_argument("--nodes", type=int, default=3, help="nodes of the cluster the large value is spread over")
    ap.add_argument("--node-latency", action="store_true",
                    help="also 1 KiB get latencies on the --nodes cluster, per owning node")
    ap.add_argument("--skip-latency", action="store_true", help="skip redis and the 1 KiB latencies")
    ap.add_argument("--latency-nodes", type=int, default=1,
                    help="nodes of the cluster for the 1 KiB latencies (1: one server, as redis-server is)")
    a = ap.parse_args()
    if not a.skip_latency and not shutil.which("redis-server"):
        print("bench: redis-server not installed (apt-get install redis-server python3-redis)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="pocket-bench-")
    gohelper = a.gohelper or os.path.join(tmp, "gohelper")
    if not a.gohelper:
        subprocess.run(["go", "build", "-o", gohelper, "./python/tests/gohelper"], cwd=REPO, check=True)
    try:
        lat = {} if a.skip_latency else redis_and_pocket(a, tmp)
        up, ctl = start_cluster(a.pocket, tmp, a.nodes)
        try:
            with pocket.Client(ctl, insecure=True) as c, c.register_job("bench", latency_sensitive=True) as job:
                thr = throughput(job, gohelper, ctl, a.big, a.rounds)
                thr["job_nodes"] = len(job.map.nodes)
                nlat = node_latency(job, gohelper, ctl, a.ops, a.rounds) if a.node_latency else {}
        finally:
            stop(up)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(a, lat, thr, nlat)
    return 0


def redis_and_pocket(a, tmp: str) -> dict:
    """The 1 KiB latencies of Pocket (a --latency-nodes cluster) and Redis."""
    rs, r = start_redis(tmp)
    try:
        up, ctl = start_cluster(a.pocket, tmp, a.latency_nodes)
        try:
            with pocket.Client(ctl, insecure=True) as c, c.register_job("bench", latency_sensitive=True) as job:
                return latency(job, r, a.ops, a.rounds)
        finally:
            stop(up)
    finally:
        r.close()
        stop(rs)


def report(a, lat: dict, thr: dict, nlat: dict) -> None:
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                         f"{platform.python_version()}", "ops": a.ops, "rounds": a.rounds, "big_bytes": a.big,
              "latency_nodes": a.latency_nodes, "nodes": a.nodes,
              "latency_1KiB": lat, "throughput": thr, "node_latency_1KiB": nlat}
    if lat:
        print(f"1 KiB, single connection, {a.latency_nodes} node(s), median of {a.rounds} rounds of {a.ops} ops:")
        for n, v in lat.items():
            print(f"  {n:<11} p50 {v['p50_us']:7.1f} us   p99 {v['p99_us']:7.1f} us")
    print(f"{a.big >> 20} MiB over the job's {thr['job_nodes']} of {a.nodes} nodes, median (best) of {a.rounds} "
          "rounds, MB/s:")
    print(f"  put       python {thr['put_mbps']} ({thr['put_best_mbps']})  "
          f"go {thr['go_put_mbps']} ({thr['go_put_best_mbps']})  ratio {thr['put_ratio']}")
    print(f"  get       python {thr['get_mbps']} ({thr['get_best_mbps']})  "
          f"go {thr['go_get_mbps']} ({thr['go_get_best_mbps']})  ratio {thr['get_ratio']}")
    print(f"  get_into  python {thr['get_into_mbps']} ({thr['get_into_best_mbps']})  ratio {thr['get_into_ratio']}")
    if nlat:
        print(f"1 KiB get on the {a.nodes}-node cluster by owning node (and all keys mixed), median of {a.rounds} "
              "rounds:")
        for n, v in nlat.items():
            print(f"  {n:<21} p50 {v['p50_us']:7.1f} us   p99 {v['p99_us']:7.1f} us")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
