"""Every `deepmad` command the README shows runs as shown, in order, in a fresh folder.

The commands are read from the README itself (indented code lines that start
with `deepmad` or the quickstart's `.venv/bin/deepmad`, continuation lines
joined, comments dropped). Only what makes them runnable here and quick is
changed, each substitution listed in SUBSTITUTIONS: placeholders get real
files (the checkout's example architecture, a published structure), optional `[...]` parts are taken, time limits and sweep sizes shrink,
the 6-minute CPU profile of deepmad-r18's space profiles a small space of
the same block instead (the commands after it read that table), and the
end-to-end latency check measures 3 designs instead of 30.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import session_folder

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
README = ROOT / "README.md"

SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"^\.venv/bin/deepmad ", "deepmad "),  # the quickstart's command, run with this interpreter
    (r"ARCH\.json", "../examples/bottleneck-example.json"),  # an architecture file of the checkout
    (r"--tinynas FILE", "--tinynas ../shared/data/tinynas/published/deepmad-R18.txt"),
    (r"\[([^\]]*)\]", r"\1"),  # optional parts: taken
    (r"--time-limit 60\b", "--time-limit 10"),  # the quickstart: beside the other test worker, with an engine to build
    (r"flops=1G:8G:40", "flops=2G:3G:2 --time-limit 4"),
    (r"flops=5M:40M:8", "flops=5M:40M:2"),
    # a small bottleneck space: the same kinds of unit as deepmad-r18's, uncalibrated (a calibration on
    # a few designs is noise): seconds instead of minutes
    (r"deepmad profile --preset deepmad-r18 -o r18-cpu.jsonl",
     "deepmad profile --block bottleneck --strides 2,2 --resolution 32 --channels 16:32 --depth 1:2 --kernels 3,5,7 "
     "--calibrate 0 -o r18-cpu.jsonl"),
    (r"(deepmad latency-check --preset deepmad-r18 --table r18-cpu.jsonl)", r"\1 --designs 3"),
]


def readme_commands() -> list[str]:
    lines = README.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    ") and not line.startswith("     "):
            text = line.strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].strip()
            for part in text.split(" && "):
                part = part.split("  #")[0].strip()
                if part.startswith(("deepmad ", ".venv/bin/deepmad ")):
                    out.append(part)
        i += 1
    return out


def runnable(command: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    return command


def test_the_readme_shows_the_commands_this_test_knows():
    commands = readme_commands()
    assert commands[0].startswith(".venv/bin/deepmad design --preset deepmad-r18")
    assert sum(c.startswith("deepmad ") for c in commands) >= 20
    for pattern, _ in SUBSTITUTIONS[1:]:  # every substitution still applies to some command
        assert any(re.search(pattern, c) for c in commands), pattern


PRODUCERS = ("deepmad design --preset deepmad-r18", "deepmad profile", "deepmad import-table")
"""The commands whose outputs others read (result.json, r18-cpu.jsonl, the imported v100-trt-fp16): run
first, once, in one folder."""
INPUTS = ("result.json", "r18-cpu.jsonl")
COMMANDS = [runnable(c) for c in readme_commands()]
OTHERS = [c for c in COMMANDS if c not in [next(c for c in COMMANDS if c.startswith(p)) for p in PRODUCERS]]


def _run(command: str, folder: Path, env: dict) -> None:
    argv = shlex.split(command)
    done = subprocess.run([sys.executable, "-m", "deepmad", *argv[1:]], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory) -> tuple[Path, dict]:
    """A folder holding the producers' outputs, made once for all test workers (a file lock between
    them), and the environment the commands run in: the imported tables, and the session's cache of
engines and latency models, shared by all."""
    from filelock import FileLock

    root = session_folder(tmp_path_factory, "readme")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPMAD_TABLES": str(root / "tables")}  # the session's cache (conftest)
    made = root / "made"
    with FileLock(str(root / "lock")):
        if not (made / "done").exists():
            if not (root / "shared").exists():
                (root / "shared").symlink_to(SHARED)  # beside each command's folder, as beside a checkout
                (root / "examples").symlink_to(ROOT / "examples")
            made.mkdir(exist_ok=True)
            for p in PRODUCERS:
                _run(next(c for c in COMMANDS if c.startswith(p)), made, env)
            (made / "done").write_text("")
    return root, env


@pytest.mark.slow
@pytest.mark.parametrize("command", OTHERS, ids=[f"{k}-{' '.join(c.split()[1:3])}" for k, c in enumerate(OTHERS)])
def test_every_readme_command_runs(command, readme_run):
    """Each command as if typed alone in a fresh folder holding the inputs it reads, made by the README's
    own commands (one test per command, so that the test workers share them out)."""
    root, env = readme_run
    folder = root / f"command{OTHERS.index(command)}"
    folder.mkdir()
    argv = shlex.split(command)
    written = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--out", "--json", "--csv", "--png", "--html", "--plot")}
    for name in set(INPUTS) & set(argv) - written:  # what it reads, as a user who made it before
        (folder / name).write_bytes((root / "made" / name).read_bytes())
    _run(command, folder, env)


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path):
    """The README's Python block, as shown, in a folder beside ``shared/`` (its published structure)."""
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the session's cache (conftest)
    done = subprocess.run([sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "model.py").exists()
