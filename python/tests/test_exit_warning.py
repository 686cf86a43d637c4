"""The warning at exit of jobs a process registered and left registered.

A Python process that exited without deregistering its job left the job
live on the controller, holding its allotment until its token expired or
an operator ran ``pocket job end``, and said nothing. Now the client
emits one LiveJobsAtExit warning at interpreter exit naming such jobs
(registered through Client.register_job or the module API's register_job,
not deregistered), and nothing for jobs it deregistered or only opened
from a token or a credential. The warning class filters it as any other.

Each test runs a child interpreter against the session's cluster; the
child prints "live ID TOKEN" for each job it leaves registered, which the
test deregisters afterwards. The negative cases also leave one control
job, so that they see the warning armed (and fail on a client without it).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pocket

REPO = Path(__file__).resolve().parents[2]
WARNED = "LiveJobsAtExit:"

PRELUDE = ("import os, sys, warnings, pocket\n"
           "def live(jobid, token):\n"
           "    print('live', jobid, token, flush=True)\n")


def _child(cluster, code: str, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, **cluster.env(), PYTHONPATH=str(REPO / "python"))
    for k in ("POCKET_TOKEN", "POCKET_JOB", "POCKET_CREDENTIAL", "PYTHONWARNINGS"):
        env.pop(k, None)
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", PRELUDE + code], env=env, capture_output=True, text=True, timeout=120)
    out.live = re.findall(r"^live (\S+) (\S+)$", out.stdout, re.M)
    return out


def _cleanup(cluster, out) -> None:
    with cluster.client() as c:
        for jobid, tok in out.live:
            try:
                c.open_job(jobid, tok).deregister(count_persisted=False)
            except pocket.PocketError:
                pass


def _warned_jobs(stderr: str) -> str:
    """The text of the one warning (asserting there is exactly one)."""
    assert stderr.count(WARNED) == 1, stderr
    return stderr[stderr.index(WARNED):]


def test_live_jobs_named_at_exit(cluster):
    """Jobs registered through either API and left registered are named in
    one warning, with how they end and how to silence it."""
    out = _child(cluster, (
        "c = pocket.Client()\n"
        "j = c.register_job('exitwarn-client')\n"
        "live(j.id, j.token_hex)\n"
        "m = pocket.register_job('exitwarn-module')\n"
        "assert m, pocket.last_error()\n"
        "live(m, pocket.job_token(m))\n"
        "c.close()\n"))
    try:
        assert out.returncode == 0, out.stderr
        assert len(out.live) == 2, out.stdout
        text = _warned_jobs(out.stderr)
        for jobid, _ in out.live:
            assert jobid in text, out.stderr
        assert "2 jobs this process registered were not deregistered" in text
        assert "pocket job end JOBID --secret-file FILE" in text
        assert "token" in text and "expires" in text
        assert 'filterwarnings("ignore", category=pocket.LiveJobsAtExit)' in text
        assert "PYTHONWARNINGS=ignore::UserWarning:pocket" in text
    finally:
        _cleanup(cluster, out)


def test_many_live_jobs_capped(cluster):
    """Past 10 jobs the warning names the first 10 and counts the rest."""
    out = _child(cluster, (
        "c = pocket.Client()\n"
        "for i in range(13):\n"
        "    j = c.register_job(f'exitcap{i}')\n"
        "    live(j.id, j.token_hex)\n"))
    try:
        assert out.returncode == 0, out.stderr
        assert len(out.live) == 13, out.stdout
        text = _warned_jobs(out.stderr)
        assert "13 jobs this process registered" in text
        assert "and 3 more" in text
        named = [jobid for jobid, _ in out.live if re.search(re.escape(jobid) + r"\b", text)]
        assert named == [jobid for jobid, _ in out.live[:10]], text
    finally:
        _cleanup(cluster, out)


DEREGISTERS = (
    "c = pocket.Client()\n"
    "j = c.register_job('exitdone-client')\n"
    "j.put('k', b'v')\n"
    "j.deregister()\n"
    "with c.register_job('exitdone-with') as w:\n"
    "    w.put('k', b'v')\n"
    "m = pocket.register_job('exitdone-module')\n"
    "assert m and pocket.deregister_job(m) == 0, pocket.last_error()\n"
    "print('done', j.id, w.id, m)\n")


def test_deregistered_jobs_not_named(cluster):
    """Jobs deregistered (Job.deregister, a with block, deregister_job) are
    not named: a child that leaves none registered warns of nothing, and
    one that also leaves a control job registered names that one only."""
    out = _child(cluster, DEREGISTERS)
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout
    assert WARNED not in out.stderr and "not deregistered" not in out.stderr, out.stderr

    out = _child(cluster, DEREGISTERS + (
        "k = c.register_job('exitdone-control')\n"
        "live(k.id, k.token_hex)\n"))
    try:
        assert out.returncode == 0, out.stderr
        done = out.stdout.split("done ", 1)[1].split()[:3]
        text = _warned_jobs(out.stderr)
        assert "1 job this process registered was not deregistered: " + out.live[0][0] + "." in text, text
        for jobid in done:
            assert jobid not in text, text
    finally:
        _cleanup(cluster, out)


def test_filtered(cluster):
    """The warning class filters the warning in code; PYTHONWARNINGS
    filters it by its module, "pocket"."""
    code = ("c = pocket.Client()\n"
            "j = c.register_job('exitfilter')\n"
            "live(j.id, j.token_hex)\n")
    outs = []
    try:
        outs.append(_child(cluster, "warnings.filterwarnings('ignore', category=pocket.LiveJobsAtExit)\n" + code))
        outs.append(_child(cluster, code, PYTHONWARNINGS="ignore::UserWarning:pocket"))
        for out in outs:
            assert out.returncode == 0, out.stderr
            assert len(out.live) == 1, out.stdout
            assert WARNED not in out.stderr and "not deregistered" not in out.stderr, out.stderr
    finally:
        for out in outs:
            _cleanup(cluster, out)


def test_opened_jobs_not_named(cluster):
    """Jobs a process only opens (Client.open_job with a token, the module
    API with POCKET_JOB and POCKET_TOKEN, Client.open_credential and
    POCKET_CREDENTIAL) are not its to end: a child that only opens jobs
    warns of nothing, and one that also registers a control job names that
    one only."""
    with cluster.client() as c:
        live_job = c.register_job("exitopen-live")
        ended_job = c.register_job("exitopen-ended")
        try:
            ended_job.put("kept", b"kept", persist=True)
            cred = ended_job.deregister(count_persisted=False).credential
            live_job.put("k", b"v")
            opens = (
                "c = pocket.Client()\n"
                f"t = c.open_job({live_job.id!r}, {live_job.token_hex!r})\n"
                "assert t.get('k') == b'v'\n"
                f"lc = c.open_credential(t.credential())\n"
                "assert lc.get('k') == b'v'\n"
                "e = c.open_credential(os.environ['POCKET_CREDENTIAL'])\n"
                "assert e.ended and e.get('kept') == b'kept'\n"
                "p = pocket.connect('', 0)\n"
                f"assert pocket.put_buffer(p, b'w', 1, 'w', {live_job.id!r}) == 0, pocket.last_error()\n"
                f"b = bytearray(4); assert pocket.get_buffer(p, 'kept', b, 4, {ended_job.id!r}) == 0, pocket.last_error()\n"
                "pocket.close(p)\n"
                "print('opened')\n")
            env = dict(POCKET_JOB=live_job.id, POCKET_TOKEN=live_job.token_hex, POCKET_CREDENTIAL=cred)
            out = _child(cluster, opens, **env)
            assert out.returncode == 0, out.stderr
            assert "opened" in out.stdout
            assert WARNED not in out.stderr and "not deregistered" not in out.stderr, out.stderr

            out = _child(cluster, opens + (
                "k = c.register_job('exitopen-control')\n"
                "live(k.id, k.token_hex)\n"), **env)
            try:
                assert out.returncode == 0, out.stderr
                text = _warned_jobs(out.stderr)
                assert "1 job this process registered was not deregistered: " + out.live[0][0] + "." in text, text
                assert live_job.id not in text and ended_job.id not in text, text
            finally:
                _cleanup(cluster, out)
        finally:
            try:
                live_job.deregister(count_persisted=False)
            except pocket.PocketError:
                pass


@pytest.mark.parametrize("found_by", ["get", "deregister"])
def test_jobs_ended_elsewhere_not_named(cluster, found_by):
    """A job another process deregistered, found ended by this one once
    the controller no longer keeps its final map (a get: the node answers
    revoked and the map fetch UnknownJob; a deregistration the controller
    answers UnknownJob), is not named at exit. Another process waits for
    the map to be dropped: a fetch here would find the final map, which
    takes the job out of the list by itself. Before, a new user's job
    ended by `pocket job deregister` in another process, with nothing
    persisted, was named "not deregistered". The child also leaves a
    control job registered, so it sees the warning armed."""
    find = {"get": "try:\n    j.get('k')\nexcept pocket.PocketError as e:\n    print('get', type(e).__name__)\n",
            "deregister": "try:\n    j.deregister()\nexcept pocket.UnknownJob:\n    print('deregister UnknownJob')\n"}[found_by]
    out = _child(cluster, (
        "import subprocess, time\n"
        "c = pocket.Client()\n"
        "j = c.register_job('exitgone')\n"
        "j.put('k', b'v')\n"
        "end = f'import pocket; pocket.Client().open_job({j.id!r}, {j.token_hex!r}).deregister(count_persisted=False)'\n"
        "subprocess.run([sys.executable, '-c', end], check=True)\n"
        "deadline = time.monotonic() + 60\n"
        "ask = f'import pocket, sys\\ntry:\\n    pocket.Client().open_job({j.id!r}, {j.token_hex!r})\\nexcept pocket.UnknownJob:\\n    sys.exit(3)'\n"
        "while subprocess.run([sys.executable, '-c', ask]).returncode != 3:  # until the final map is dropped\n"
        "    assert time.monotonic() < deadline, 'the final map is still kept after 60 s'\n"
        "    time.sleep(0.2)\n"
        + find +
        "k = c.register_job('exitgone-control')\n"
        "live(k.id, k.token_hex)\n"
        "print('gone', j.id)\n"))
    try:
        assert out.returncode == 0, out.stderr
        assert f"{found_by} " in out.stdout, out.stdout
        gone = out.stdout.split("gone ", 1)[1].split()[0]
        text = _warned_jobs(out.stderr)
        assert "1 job this process registered was not deregistered: " + out.live[0][0] + "." in text, text
        assert gone not in text, text
    finally:
        _cleanup(cluster, out)
