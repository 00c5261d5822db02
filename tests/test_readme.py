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

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
README = ROOT / "README.md"

SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"^\.venv/bin/deepmad ", "deepmad "),  # the quickstart's command, run with this interpreter
    (r"ARCH\.json", "../examples/bottleneck-example.json"),  # an architecture file of the checkout
    (r"--tinynas FILE", "--tinynas ../shared/data/tinynas/published/deepmad-R18.txt"),
    (r"\[([^\]]*)\]", r"\1"),  # optional parts: taken
    (r"--time-limit 60\b", "--time-limit 10"),  # the quickstart: beside the other test worker, with an engine to build
    (r"--time-limit 6\b", "--time-limit 4"),
    (r"flops=1G:8G:40", "flops=2G:3G:2"),
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


PRODUCERS = ("deepmad design --preset deepmad-r18", "deepmad profile")
"""The commands whose outputs others read (result.json, r18-cpu.jsonl): run first, in one folder."""
INPUTS = ("result.json", "r18-cpu.jsonl")


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    """Each command as if typed alone in a fresh folder holding the inputs it reads, made by the README's
    own commands."""
    (tmp_path / "shared").symlink_to(SHARED)  # beside each command's folder, as beside a checkout
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPMAD_TABLES": str(tmp_path / "tables"), "DEEPMAD_CACHE": str(tmp_path / "cache")}
    commands = [runnable(c) for c in readme_commands()]
    producers = [next(c for c in commands if c.startswith(p)) for p in PRODUCERS]  # the first of each
    made = tmp_path / "made"
    made.mkdir()

    def run(command: str, folder: Path) -> None:
        argv = shlex.split(command)
        done = subprocess.run([sys.executable, "-m", "deepmad", *argv[1:]], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"

    for command in producers:
        run(command, made)
    for k, command in enumerate(c for c in commands if c not in producers):
        folder = tmp_path / f"command{k}"
        folder.mkdir()
        argv = shlex.split(command)
        written = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--out", "--json", "--csv", "--png", "--html", "--plot")}
        for name in set(INPUTS) & set(argv) - written:  # what it reads, as a user who made it before
            (folder / name).write_bytes((made / name).read_bytes())
        run(command, folder)


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path):
    """The README's Python block, as shown, in a folder beside ``shared/`` (its published structure)."""
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPMAD_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "model.py").exists()
