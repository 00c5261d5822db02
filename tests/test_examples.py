"""The examples run as the README shows them (with fewer epochs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_digits_designs_writes_imports_and_trains_a_network(tmp_path):
    pytest.importorskip("sklearn")
    # one torch thread: the suite's other worker has the other core
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits.py"), "--epochs", "8", "--out", "m.py", "--threads", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "designed: optimal" in done.stdout and (tmp_path / "m.py").exists()
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", done.stdout).group(1))
    assert accuracy >= 95.0, done.stdout
