"""The PyWren-style example runs end to end and its counts are right."""

import os
import subprocess
import sys

from conftest import REPO


def test_wordcount_example(cluster, tmp_path):
    env = dict(os.environ, **cluster.env())
    env.pop("POCKET_JOB", None)
    env.pop("POCKET_TOKEN", None)
    p = subprocess.run([sys.executable, str(REPO / "python" / "examples" / "wordcount.py"), "--maps", "3",
                        "--reduces", "2", "--words", "5000", "--tmp", str(tmp_path)],
                       env=env, capture_output=True, timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    # 3 maps x 2 reduces: 6 shuffle files (the old example printed 3, the
    # map directories).
    assert "words=15000 distinct=20 shuffle_files=6 shuffle_left=0" in out
    assert out.rstrip().endswith("OK")
