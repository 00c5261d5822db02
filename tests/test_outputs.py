"""Output files: never clobbered without --force, never half-written, the same bytes on every run;
and a solve stopped by Ctrl-C still hands back its best design."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepmad import Architecture, interrupt
from deepmad.cli import main
from hwmodels import files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bottleneck-example.json"
SMALL = ["--block", "basic", "--strides", "2,2", "--resolution", "32", "--channels", "16:32",
         "--stem-channels", "16:16", "--depth", "1:2", "--kernels", "3", "--flops", "2M"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "command",
    [
        ["generate", str(EXAMPLE), "--no-verify", "-o", "{out}"],
        ["convert", str(EXAMPLE), "--to", "tinynas", "-o", "{out}"],
    ],
    ids=["generate", "convert"],
)
def test_an_existing_file_is_replaced_only_by_the_same_content_or_with_force(tmp_path, capsys, command):
    out = tmp_path / "out.txt"
    argv = [a.replace("{out}", str(out)) for a in command]
    assert run(capsys, *argv)[0] == 0
    first = out.read_bytes()
    inode = out.stat().st_ino

    status, stdout, _ = run(capsys, *argv)  # the same content: left as it is
    assert status == 0 and "is unchanged" in stdout and out.stat().st_ino == inode

    out.write_text("someone else's file\n")
    status, _, err = run(capsys, *argv)
    assert status == 2 and err == f"deepmad: error: {out}: exists with other content; pass --force to replace it\n"
    assert out.read_text() == "someone else's file\n"

    assert run(capsys, *argv, "--force")[0] == 0
    assert out.read_bytes() == first
    assert listing(tmp_path) == ["out.txt"]


def test_design_refuses_existing_outputs_before_solving(tmp_path, capsys):
    model, result = tmp_path / "model.py", tmp_path / "result.json"
    model.write_text("keep me\n")
    started = time.perf_counter()
    status, _, err = run(capsys, "design", "--preset", "deepmad-r18", "-o", str(model))
    assert status == 2 and err == f"deepmad: error: {model}: exists; pass --force to replace it\n"
    assert time.perf_counter() - started < 5  # refused before any solve
    result.write_text("{}\n")
    status, _, err = run(capsys, "design", *SMALL, "--json", str(result))
    assert status == 2 and err == f"deepmad: error: {result}: exists; pass --force to replace it\n"
    assert run(capsys, "design", *SMALL, "-o", str(model), "--json", str(result), "--force")[0] == 0
    assert json.loads(result.read_text())["status"] == "optimal" and "def build_model" in model.read_text()
    assert listing(tmp_path) == ["model.py", "result.json"]


def test_writes_leave_no_temporary_file_and_keep_the_mode(tmp_path):
    target = tmp_path / "t.txt"
    files.write_bytes(target, b"one")
    os.chmod(target, 0o640)
    files.write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o640
    assert listing(tmp_path) == ["t.txt"]


def test_a_file_written_while_proc_is_unusable_still_lands_whole(tmp_path, monkeypatch):
    """Without /proc (or O_TMPFILE), the writer falls back to a named temporary file."""
    real_link = os.link

    def no_proc(src, dst, **kw):
        if str(src).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory")
        return real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", no_proc)
    files.write_bytes(tmp_path / "t.txt", b"x" * 100_000)
    assert (tmp_path / "t.txt").read_bytes() == b"x" * 100_000 and listing(tmp_path) == ["t.txt"]


def _design_process(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deepmad", "design", *SMALL, "-o", "model.py", *extra],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_killing_design_never_leaves_a_partial_or_unverified_model_file(tmp_path):
    references = {}  # the model file names its command: with and without --force
    for force in (False, True):
        reference_dir = tmp_path / f"reference{int(force)}"
        reference_dir.mkdir()
        started = time.perf_counter()
        proc = _design_process(reference_dir, *(["--force"] if force else []))
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
        whole = time.perf_counter() - started
        references[force] = (reference_dir / "model.py").read_bytes()
    old = b"# the model file of an earlier design\n"

    rng = random.Random(0)
    for attempt in range(5):
        folder = tmp_path / f"kill{attempt}"
        folder.mkdir()
        replacing = attempt % 2 == 1  # half the runs replace an existing file (--force)
        if replacing:
            (folder / "model.py").write_bytes(old)
        proc = _design_process(folder, *(["--force"] if replacing else []))
        # Kill times spread over the run (imports, solve, torch check, write), more of them late.
        time.sleep(whole * rng.choice([rng.uniform(0.2, 0.9), rng.uniform(0.85, 1.05)]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        names = listing(folder)
        assert names in ([], ["model.py"]), names  # no temporary file left behind either
        if names:  # the whole verified model, or the file it was to replace
            assert (folder / "model.py").read_bytes() in ((references[True], old) if replacing else (references[False],))


@pytest.mark.slow
def test_design_outputs_are_the_same_bytes_on_every_run(tmp_path, capsys, monkeypatch):
    results = []
    for run_ in ("a", "b"):
        folder = tmp_path / run_
        folder.mkdir()
        monkeypatch.chdir(folder)  # the same command line (the outputs record it)
        assert run(capsys, "design", *SMALL, "--params", "40k", "-o", "m.py", "--json", "r.json")[0] == 0
        data = json.loads((folder / "r.json").read_text())
        assert isinstance(data.pop("solve_seconds"), float)  # the one measured field
        results.append(((folder / "m.py").read_bytes(), json.dumps(data)))
    assert results[0] == results[1]


def _interrupted_design(folder: Path, presses: int) -> tuple[int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepmad", "design", "--preset", "deepmad-r18", "-o", "model.py", "--json", "result.json"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    time.sleep(8)  # past the imports, inside the solve
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)  # a second press while the first one still unwinds the solve
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


@pytest.mark.slow
def test_ctrl_c_during_a_solve_returns_the_best_design_marked_not_proven(tmp_path):
    status, output = _interrupted_design(tmp_path, presses=1)
    assert status == 0, output
    assert "interrupted (not proven optimal)" in output and "Traceback" not in output
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted" and result["objective"] > 0 and result["solve_seconds"] < 100
    assert result["bound"] is None or result["bound"] >= result["objective"]  # None: stopped before any bound was proven
    assert (result["gap"] is None) == (result["bound"] is None)
    arch = Architecture.from_dict(result["architecture"])
    assert "def build_model" in (tmp_path / "model.py").read_text() and arch.stages


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_without_output(tmp_path):
    status, output = _interrupted_design(tmp_path, presses=2)
    assert status == 130 and output.strip().endswith("deepmad: interrupted") and "Traceback" not in output
    assert listing(tmp_path) == []


def test_ctrl_c_in_a_solve_is_forgotten_by_the_next_one():
    from deepmad import interrupt

    with interrupt.catching():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert interrupt.requested()
    assert not interrupt.requested() and interrupt.happened()
    with interrupt.catching():
        assert not interrupt.requested()
    assert not interrupt.happened()


def test_two_presses_inside_one_native_call_count_as_two():
    """Python runs the handler once for presses that land in one long native call (a numba kernel,
    a HiGHS run); the second press must still stop at once."""
    import threading

    from deepmad import interrupt

    def press_twice():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # two pending SIGINTs are one to the kernel: the first is delivered first
        os.kill(os.getpid(), signal.SIGINT)

    values = np.random.default_rng(0).random(2 * 10**7)
    with pytest.raises(KeyboardInterrupt):
        with interrupt.catching():
            timer = threading.Timer(0.05, press_twice)
            timer.start()
            began = time.perf_counter()
            np.sort(values)  # native code: no handler runs inside it
            timer.join()
            assert time.perf_counter() - began > 0.2, "the presses did not land inside the native call"
    assert not interrupt.requested()


class _Run:
    """A stand-in for a ``highspy.Highs`` run."""

    def cancelSolve(self) -> None:
        pass


@pytest.mark.parametrize("where", ["a loop", "a HiGHS run"])
def test_a_second_ctrl_c_swallowed_by_a_callback_still_stops(where):
    """HiGHS calls Python back, and an exception raised there does not reach the caller: the second
    press must stop the solve anyway, where the solver next looks (its loops, the run's end)."""
    with pytest.raises(KeyboardInterrupt):
        with interrupt.catching():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert interrupt.requested()
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass  # the callback swallowed it
            if where == "a loop":
                interrupt.past(time.perf_counter() + 60)
            else:
                with interrupt.running(_Run()):
                    pass
    assert not interrupt.requested()
