"""`deepmad design`, `deepmad presets` and the amounts people type."""

from __future__ import annotations

import re

import json

import pytest

import deepmad
from deepmad import Architecture, InputError, costs, score
from deepmad.cli import main
from deepmad.units import parse_amount, parse_range

SMALL = ["--block", "basic", "--strides", "2,2", "--resolution", "32", "--channels", "16:32",
         "--stem-channels", "16:16", "--depth", "1:2", "--kernels", "3"]


@pytest.mark.parametrize("text,value", [("1.8G", 1.8e9), ("11.7M", 11.7e6), ("250k", 250e3), ("1.82e9", 1.82e9), (" 0.3 ", 0.3), ("12", 12.0)])
def test_amounts(text, value):
    assert parse_amount(text, "--flops") == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["1.8Gb", "12 ms", "-5", "0", "nan", "inf", "", "1e999", "G"])
def test_bad_amounts_name_the_field_and_the_accepted_forms(text):
    with pytest.raises(InputError) as info:
        parse_amount(text, "--flops")
    assert info.value.field == "--flops" and "1.8G" in info.value.message


def test_ranges():
    assert parse_range("1:16", "--depth") == (1, 16) and parse_range("8", "--depth") == (8, 8)
    for bad in ("16:1", "0:4", "a:b", "1:2:3"):
        with pytest.raises(InputError):
            parse_range(bad, "--depth")


def test_design_writes_json_and_a_model_whose_metrics_meet_the_budgets(tmp_path, capsys):
    out, js = tmp_path / "model.py", tmp_path / "result.json"
    status = main(["design", *SMALL, "--flops", "2M", "--params", "40k", "--rho", "0.5", "-o", str(out), "--json", str(js)])
    assert status == 0 and out.exists()
    result = json.loads(js.read_text())
    assert result["status"] == "optimal" and result["gap"] <= 1e-5 and result["bound"] >= result["objective"]
    arch = Architecture.from_dict(result["architecture"])
    c, s = costs(arch), score(arch)
    assert c.flops_tinynas <= 2e6 and c.params <= 40e3 and s.rho <= 0.5
    assert result["objective"] == s.objective and result["metrics"]["objective"] == s.objective
    assert result["tinynas"][0]["class"] == "ConvKXBNRELU"
    assert "optimal: objective" in capsys.readouterr().out


def test_design_infeasible_names_the_budget_and_its_smallest_value(tmp_path, capsys):
    js = tmp_path / "result.json"
    status = main(["design", *SMALL, "--flops", "10k", "-o", str(tmp_path / "model.py"), "--json", str(js)])
    err = capsys.readouterr().err
    assert status == 1 and "infeasible" in err and "flops: the limit 10,000 is below the smallest value the space allows" in err
    assert not (tmp_path / "model.py").exists()
    assert json.loads(js.read_text())["status"] == "infeasible"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--preset", "deepmad-r19"], "did you mean deepmad-r18"),
        (["--flops", "1.8Gb", *SMALL], "argument --flops: expected a positive amount"),
        (["--strides", "2,2"], "--block: give --preset NAME"),
        ([*SMALL, "--depth", "3:1"], "argument --depth: expected LO:HI"),
        (["--block", "basic", "--strides", "3,2"], "--strides: must be 1 or 2, got 3"),
        ([*SMALL, "--gap", "-1"], "--gap: must be a relative gap in [0, 1)"),
        ([*SMALL, "--time-limit", "nan"], "--time-limit: must be a positive number of seconds"),
        ([*SMALL, "--kernels", "4"], "--kernels: needs a non-empty set of odd positive kernels"),
    ],
)
def test_design_usage_errors(capsys, argv, message):
    status = main(["design", *argv])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err


def test_presets_lists_every_preset_with_its_budgets(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, flops in [("deepmad-r18", "1.82G"), ("deepmad-29m-288", "4.50G"), ("deepmad-89m", "15.40G")]:
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert flops in line
    from deepmad.problem.presets import REFERENCE_RULES

    for block, rules in REFERENCE_RULES.items():
        assert f"  {block}, reference (TinyNAS's): {rules}" in out
    # where the published structures lie, read from ../shared beside the checkout (the default)
    assert "  deepmad-r18       inside" in out
    assert "  deepmad-50m       outside: widths off the grid of 8; stem.channels: 48 is not in (16, 32)" in out


def test_presets_says_where_the_published_structures_are_not(tmp_path, capsys):
    assert main(["presets", "--published", str(tmp_path)]) == 0
    assert "  deepmad-r34       not found" in capsys.readouterr().out


def test_a_preset_in_its_reference_space(tmp_path):
    js = tmp_path / "r.json"
    assert main(["design", "--preset", "deepmad-r18", "--space", "reference", "--time-limit", "8", "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert result["problem"]["name"] == "deepmad-r18-reference" and result["problem"]["space"]["kernels"] == [3, 5]
    arch = Architecture.from_dict(result["architecture"])
    assert {s.kernel for s in arch.stages} <= {3, 5} and arch.stages[0].depth <= 3 and arch.stem.channels <= 32


def test_progress_is_one_line_per_event_on_standard_error_and_verbose_adds_the_solvers_log(capfd):
    assert main(["design", *SMALL, "--flops", "2M", "--progress"]) == 0
    captured = capfd.readouterr()
    assert "optimal: objective" in captured.out and "HiGHS" not in captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert lines and all(re.match(r" *[0-9.]+ s  \S.* incumbent .* bound .* gap ", line) for line in lines)
    assert main(["design", *SMALL, "--flops", "2M", "--verbose"]) == 0
    captured = capfd.readouterr()
    assert "HiGHS" in captured.out + captured.err


def test_the_time_limit_counts_from_the_process_start_only_for_the_process_own_command(tmp_path, monkeypatch, capsys):
    """`deepmad design` as the process's command counts starting Python and the imports against
    --time-limit; `main(argv)` called in an older process (a notebook, a test run) counts from the
    call: a process older than the limit still gets the solve it asked for, not a 0.1 s one."""
    import sys
    import time

    from deepmad import cli

    stops = []
    real = cli.solve

    def spy(problem, **kwargs):
        stops.append(kwargs["stop_at"] - time.perf_counter())
        return real(problem, **kwargs)

    monkeypatch.setattr(cli, "solve", spy)
    monkeypatch.setattr(cli, "_process_age", lambda: 1000.0)
    argv = ["design", *SMALL, "--flops", "2M", "--time-limit", "20", "--json", str(tmp_path / "r.json"), "--force"]
    assert main(argv) == 0
    monkeypatch.setattr(sys, "argv", ["deepmad", *argv])
    assert main() == 0
    assert 18 < stops[0] <= 19.5 and stops[1] <= 0.1


def test_a_result_records_its_problem_and_command_and_can_be_scored_and_generated(tmp_path, capsys):
    from conftest import import_file

    out, js = tmp_path / "model.py", tmp_path / "result.json"
    argv = ["design", *SMALL, "--flops", "2M", "--params", "40k", "--rho", "0.5", "-o", str(out), "--json", str(js)]
    assert main(argv) == 0
    result = json.loads(js.read_text())
    assert result["format"] == "deepmad-result" and result["version"] == 1 and result["deepmad_version"] == deepmad.__version__
    assert result["command"] == "deepmad " + " ".join(argv)
    problem = result["problem"]
    assert problem["budgets"] == {"flops": 2e6, "flops_convention": "tinynas", "params": 40e3, "rho": 0.5, "max_layers": None,
                                  "latency_ms": None, "latency_table": None}
    assert problem["space"]["block"] == "basic" and problem["space"]["depths"] == [[1, 2], [1, 2]]
    module = import_file(out)
    assert module.DESIGN["problem"] == problem and module.DESIGN["objective"] == result["objective"]
    doc = " ".join(module.__doc__.split())
    assert "params <= 40k (classifier excluded)" in doc and "Certificate: optimal" in doc
    capsys.readouterr()

    assert main(["score", str(js), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objective"] == result["objective"]
    again = tmp_path / "again.py"
    assert main(["generate", str(js), "-o", str(again)]) == 0
    assert again.read_text() == out.read_text()  # the same file as design wrote, record included


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"deepmad {deepmad.__version__}"
