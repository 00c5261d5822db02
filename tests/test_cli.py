"""The command line: score, generate, convert, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepmad import Architecture, costs, score
from deepmad.cli import main
from deepmad.model import tinynas

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared" / "data" / "tinynas" / "published"
EXAMPLE = ROOT / "examples" / "bottleneck-example.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_score_json_has_the_documented_fields(capsys):
    status, out, err = run(capsys, "score", "--tinynas", str(PUBLISHED / "deepmad-R50.txt"), "--resolution", "224", "--json")
    assert status == 0 and err == ""
    m = json.loads(out)
    arch = tinynas.load(PUBLISHED / "deepmad-R50.txt", resolution=224)
    c, s = costs(arch), score(arch)
    assert m["params"] == c.params and m["flops_tinynas"] == c.flops_tinynas and m["macs"] == c.macs
    assert m["entropy"] == s.entropy and m["penalty"] == s.penalty and m["objective"] == s.objective
    assert m["rho"] == s.rho and m["layers"] == s.layers == 157
    assert len(m["prefixes"]) == 5


def test_score_table_names_the_figures(capsys):
    status, out, _ = run(capsys, "score", str(EXAMPLE))
    assert status == 0
    arch = Architecture.load(EXAMPLE)
    assert f"{costs(arch).params:,}" in out
    assert f"{score(arch).objective:.4f}" in out
    assert "max rho" in out


def test_score_resolution_option_changes_the_objective(capsys):
    path = str(PUBLISHED / "deepmad-29M-288.txt")
    _, own, _ = run(capsys, "score", "--tinynas", path, "--resolution", "288", "--json")
    _, ref, _ = run(capsys, "score", "--tinynas", path, "--resolution", "288", "--json", "--score-resolution", "224")
    assert json.loads(own)["objective"] > json.loads(ref)["objective"]
    assert json.loads(ref)["score_resolution"] == 224


def test_generate_writes_a_verified_model_file(tmp_path, capsys):
    out = tmp_path / "model.py"
    status, stdout, _ = run(capsys, "generate", str(EXAMPLE), "-o", str(out), "--verify")
    assert status == 0 and out.exists() and "verified" in stdout
    assert "def build_model(" in out.read_text()


def test_convert_round_trips_tinynas_and_json(tmp_path, capsys):
    js = tmp_path / "arch.json"
    status, _, _ = run(capsys, "convert", "--tinynas", str(PUBLISHED / "deepmad-89M.txt"), "--resolution", "224", "--to", "json", "-o", str(js))
    assert status == 0
    status, text, _ = run(capsys, "convert", str(js), "--to", "tinynas")
    assert status == 0
    assert tinynas.parse(text, resolution=224) == tinynas.load(PUBLISHED / "deepmad-89M.txt", resolution=224)


def _example_with(**changes) -> dict:
    data = json.loads(EXAMPLE.read_text())
    for path, value in changes.items():
        target = data
        *keys, last = path.split("__")
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()

BAD_ARCHITECTURES = [
    ({"stages__1__channels": 0}, "stages[1].channels: must be a positive integer"),
    ({"stages__1__channels": -8}, "stages[1].channels: must be a positive integer"),
    ({"stages__1__inner": 12.5}, "stages[1].inner: must be a positive integer"),
    ({"stem__channels": "32"}, "stem.channels: must be a positive integer"),
    ({"stages__0__kernel": 4}, "stages[0].kernel: must be odd"),
    ({"stages__2__stride": 3}, "stages[2].stride: must be 1 or 2"),
    ({"resolution": 200}, "resolution: 200 is not divisible by the total stride 32"),
    ({"stages__3__depth": 0}, "stages[3].depth: must be a positive integer"),
    ({"stages__0__block": "resnext"}, "stages[0].block: unknown block type 'resnext'"),
    ({"version": 7}, "version: 7 is not supported"),
    ({"version": _DELETE}, "version: missing"),
    ({"stages__0__kernel": _DELETE}, "stages[0].kernel: missing"),
    ({"stages__0__colour": "red"}, "stages[0].colour: unknown field"),
    ({"stages": []}, "stages: at least one stage is needed"),
    ({"name": "x\"\"\"; import os"}, "name: must be up to 64 letters"),
]


@pytest.mark.parametrize("changes,message", BAD_ARCHITECTURES)
@pytest.mark.parametrize("command", ["score", "generate"])
def test_bad_architecture_is_one_line_exit_2_and_no_file(tmp_path, capsys, changes, message, command):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(_example_with(**changes)))
    out = tmp_path / "model.py"
    extra = ["-o", str(out)] if command == "generate" else []
    status, _, err = run(capsys, command, str(arch), *extra)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("deepmad: error: ")
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json"]


BAD_FILES = [
    ("arch.json", '{"format": "deepmad-architecture", "version": 1, "stem": ', "not valid JSON"),
    ("arch.json", "[1, 2, 3]", "must be a JSON object"),
    ("net.txt", "{'best_structures': [[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2},", "expected a Python literal"),
    ("net.txt", "__import__('os').system('touch PWNED')", "expected a Python literal"),
    ("net.txt", "[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2}, {'class': 'SuperResFoo', 'in': 32}]", "layer 1.class: unknown class 'SuperResFoo'"),
    ("net.txt", "[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2}, {'class': 'SuperResK1KXK1', 'in': 16, 'out': 64, 'btn': 16, 'k': 3, 's': 2, 'L': 1}]", "layer 1.in: is 16 but the previous layer outputs 32"),
    ("net.txt", "[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2}, {'class': 'SuperResK1KXK1', 'in': 32, 'out': 64, 'k': 3, 's': 2, 'L': 1}]", "layer 1.btn: missing"),
    ("net.txt", "[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2}, {'class': 'SuperResK1KXK1', 'in': 32, 'out': 64, 'btn': 16, 'k': 2, 's': 2, 'L': 1}]", "layer 1.kernel: must be odd"),
]


@pytest.mark.parametrize("name,text,message", BAD_FILES)
def test_malformed_files_are_one_line_exit_2(tmp_path, capsys, monkeypatch, name, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    args = [name] if name.endswith(".json") else ["--tinynas", name, "--resolution", "224"]
    status, _, err = run(capsys, "generate", *args, "-o", "model.py")
    assert status == 2
    assert err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["score"], "ARCH: missing"),
        (["score", "--tinynas", "x.txt"], "--resolution: required with --tinynas"),
        (["score", "--tinynas", "x.txt", "--resolution", "0"], "expected a positive integer"),
        (["score", "nowhere.json"], "nowhere.json: no such file"),
        (["frobnicate"], "invalid choice"),
        (["generate", "nowhere.json"], "required: -o/--out"),
        (["score", "nowhere.json", "--alpha", "1,x"], "expected comma-separated numbers"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2 and err.count("\n") == 1 and message in err


def test_wrong_alpha_length_is_reported(capsys):
    status, _, err = run(capsys, "score", str(EXAMPLE), "--alpha", "1,1,8")
    assert status == 2 and "alpha: needs one weight per scoring prefix: 5 values, got 3" in err


def test_console_script_runs_without_traceback(tmp_path):
    bad = tmp_path / "arch.json"
    bad.write_text("{")
    proc = subprocess.run([sys.executable, "-m", "deepmad", "score", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("deepmad: error:")


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["design", "-h"], ["--he"]])
def test_help_prints_and_returns_0(capsys, argv):
    assert main(argv) == 0
    assert "usage: deepmad" in capsys.readouterr().out
