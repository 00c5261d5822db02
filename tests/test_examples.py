"""The examples run as the README shows them (with fewer epochs)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepmad import Architecture, costs
from generators import pytorch

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


def _families() -> dict:
    spec = importlib.util.spec_from_file_location("imagenet_families", ROOT / "examples" / "imagenet_families.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROBLEMS


@pytest.mark.slow
@pytest.mark.parametrize("block", sorted(_families()))
def test_each_family_example_designs_an_imagenet_backbone_and_writes_a_checked_model_file(tmp_path, block):
    problem = _families()[block]
    assert problem.space.block == block and len(problem.space.strides) == 5 and problem.space.resolution == 224
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "imagenet_families.py"), "--block", block, "--time-limit", "3",
                           "--out", "m.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(rf"{problem.name}: (optimal|time_limit), objective [\d,.]+", done.stdout)
    text = (tmp_path / "m.py").read_text()
    arch = Architecture.from_dict(pytorch.load(text).ARCHITECTURE)
    assert problem.check(arch).feasible and all(s.block == block for s in arch.stages)
    assert pytorch.measure(text) == {"params": costs(arch).params_with_classifier, "macs": costs(arch).macs_with_classifier}
