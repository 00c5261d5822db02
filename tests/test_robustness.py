"""Hostile and extreme inputs end in clean errors; generated models stay usable off the design grid."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmad import Architecture, InputError, Scoring, Stage, Stem, score
from deepmad.cli import main
from generators import pytorch as gen

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = json.loads((ROOT / "examples" / "bottleneck-example.json").read_text())
STEM = "{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 16, 's': 2}"


def run(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


def write_json(tmp_path: Path, data: object, raw: str | None = None) -> str:
    path = tmp_path / "arch.json"
    path.write_text(raw if raw is not None else json.dumps(data))
    return str(path)


def small(**stage) -> Architecture:
    fields = dict(block="bottleneck", channels=32, inner=16, kernel=3, depth=2, stride=2) | stage
    return Architecture(stem=Stem(16), stages=(Stage(**fields), Stage(**(fields | {"channels": 64}))), resolution=32)


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("stages", 0, "channels"), 10**400, "stages[0].channels: must be at most 65,536, got 1000"),
        (("stages", 0, "depth"), 10_000_000, "stages[0].depth: must be at most 1,000"),
        (("resolution",), 2**40, "resolution: must be at most 16,384"),
        (("in_channels",), 10**20, "in_channels: must be at most 65,536"),
        (("stages", 1, "kernel"), 33, "stages[1].kernel: must be at most 31"),
        (("stages", 1, "stride"), 2.0, "stages[1].stride: must be 1 or 2, got 2.0"),
    ],
)
def test_huge_and_odd_numbers_are_refused(tmp_path, capsys, path, value, message):
    data = json.loads(json.dumps(EXAMPLE))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    status, err = run(capsys, "score", write_json(tmp_path, data))
    assert status == 2 and err.count("\n") == 1 and message in err


def test_a_number_of_thousands_of_digits_is_a_clean_error(tmp_path, capsys):
    raw = json.dumps(EXAMPLE).replace('"resolution": 224', '"resolution": ' + "9" * 5000)
    status, err = run(capsys, "score", write_json(tmp_path, None, raw))
    assert status == 2 and "not a usable JSON architecture" in err


@pytest.mark.parametrize(
    "layer,message",
    [
        ("{'class': ['x'], 'in': 16}", "layer 1.class: must be a class name string"),
        ("{'class': 'SuperResK1KXK1', 'in': 16, 'out': 32, 'btn': 16, 'k': 3, 's': 2, 'L': 1, 'nbitsA': 8}", "layer 1.nbitsA: unknown key"),
        ("{'class': 'SuperResK1KXK1', 'in': 16, 'out': 32, 'btn': 0x" + "f" * 5000 + ", 'k': 3, 's': 2, 'L': 1}", "layer 1.inner: must be at most"),
    ],
)
def test_hostile_tinynas_layers(tmp_path, capsys, layer, message):
    path = tmp_path / "net.txt"
    path.write_text(f"[{STEM}, {layer}]")
    status, err = run(capsys, "score", "--tinynas", str(path), "--resolution", "224")
    assert status == 2 and err.count("\n") == 1 and message in err


def test_oversized_input_files_are_refused_without_reading_them_whole(tmp_path, capsys):
    path = tmp_path / "net.txt"
    path.write_bytes(b" " * ((1 << 20) + 10))
    status, err = run(capsys, "score", "--tinynas", str(path), "--resolution", "224")
    assert status == 2 and "larger than 1,048,576 bytes" in err


def test_int_like_values_are_stored_as_plain_ints():
    class Sneaky(int):
        def __format__(self, spec: str) -> str:
            return "__import__('os')"

    arch = Architecture(stem=Stem(np.int64(16)), stages=(Stage("basic", Sneaky(32), 16, 3, 1, 2),), resolution=32)
    assert type(arch.stem.channels) is int and type(arch.stages[0].channels) is int
    assert "__import__" not in gen.render(arch)


def test_wrong_part_types_name_the_field():
    with pytest.raises(InputError) as info:
        Architecture(stem=32, stages=(Stage("basic", 8, 8, 3, 1, 2),))  # type: ignore[arg-type]
    assert info.value.field == "stem"
    with pytest.raises(InputError) as info:
        Architecture(stem=Stem(8), stages=(Stage("basic", 8, 8, 3, 1, 2),), head=64)  # type: ignore[arg-type]
    assert info.value.field == "head"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--score-resolution", "100"], "--score-resolution: scoring resolution 100 is not divisible by the total stride 32"),
        (["--beta", "-1"], "--beta: must be at least 0"),
        (["--beta", "nan"], "--beta: must be a finite number"),
        (["--penalty-stages", "2,2,3"], "--penalty-stages: lists a stage twice"),
        (["--penalty-stages", "7"], "--penalty-stages: stage 7 does not exist"),
        (["--alpha", "1,1,1,1,inf"], "--alpha: must be a finite number"),
    ],
)
def test_scoring_options_are_named_as_typed(capsys, argv, message):
    status, err = run(capsys, "score", str(ROOT / "examples" / "bottleneck-example.json"), *argv)
    assert status == 2 and err.count("\n") == 1 and message in err


def test_beta_and_penalty_stages_options_change_the_score(capsys):
    path = str(ROOT / "examples" / "bottleneck-example.json")
    arch = Architecture.load(path)
    status = main(["score", path, "--json", "--beta", "3", "--penalty-stages", "0,1"])
    m = json.loads(capsys.readouterr().out)
    expected = score(arch, Scoring(beta=3, penalty_stages=(0, 1)))
    assert status == 0 and m["penalty"] == expected.penalty and m["penalty_stages"] == [0, 1]


def test_mixed_block_types_penalise_every_stage():
    arch = Architecture(stem=Stem(16), stages=(Stage("bottleneck", 32, 16, 3, 1, 2), Stage("basic", 32, 16, 3, 3, 2)), resolution=32)
    assert score(arch).penalty_stages == (0, 1)


def test_unexpected_failures_are_one_line_exit_1_and_debug_shows_them(capsys, monkeypatch):
    import deepmad.cli as cli

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "metrics", boom)
    path = str(ROOT / "examples" / "bottleneck-example.json")
    status, err = run(capsys, "score", path)
    assert status == 1 and err.count("\n") == 1 and "unexpected RuntimeError: 'disk on fire'" in err
    with pytest.raises(RuntimeError):
        main(["score", path, "--debug"])  # accepted after the subcommand too


def _module(tmp_path: Path, arch: Architecture):
    path = gen.write(arch, tmp_path / "net.py")
    spec = importlib.util.spec_from_file_location("net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("block", ["bottleneck", "basic", "inverted_residual", "inverted_residual_se"])
def test_models_run_at_sides_that_are_not_multiples_of_the_stride(tmp_path, block):
    arch = small(block=block, inner=48 if block.startswith("inverted") else 16)
    module = _module(tmp_path, arch)
    with torch.no_grad():
        for side in (31, 45):
            assert module.build_model(num_classes=5).eval()(torch.zeros(1, 3, side, side)).shape == (1, 5)
            maps = module.build_model(features_only=True).eval()(torch.zeros(1, 3, side, side))
            for fmap, info in zip(maps, module.FEATURES):
                assert fmap.shape[1:] == (info["num_chs"], -(-side // info["reduction"]), -(-side // info["reduction"]))


def test_feature_only_models_say_they_have_no_head(tmp_path):
    module = _module(tmp_path, small())
    model = module.build_model(features_only=True)
    with pytest.raises(RuntimeError, match="features_only"):
        model.forward_features(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="features_only"):
        module.build_model(out_indices=(1,))


def test_forward_features_and_head_compose_to_forward(tmp_path):
    module = _module(tmp_path, small())
    model = module.build_model(num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 64, 4, 4)
        assert torch.equal(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, 64)


def test_model_file_states_its_input_channels(tmp_path):
    arch = Architecture(stem=Stem(16), stages=(Stage("basic", 16, 16, 3, 1, 2),), resolution=32, in_channels=1)
    assert "Design input: 1 x 32 x 32." in gen.render(arch)


def test_atomic_write_keeps_the_replaced_files_mode(tmp_path):
    target = tmp_path / "model.py"
    target.write_text("old")
    os.chmod(target, 0o600)
    gen.write(small(), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().startswith('"""')


def test_empty_output_path_is_refused(capsys):
    status, err = run(capsys, "generate", str(ROOT / "examples" / "bottleneck-example.json"), "-o", "")
    assert status == 2 and "is not a file path" in err
