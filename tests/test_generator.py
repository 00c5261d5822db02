"""The PyTorch generator: generated model files build, run, count exactly what
deepmad's accounting says, and are deterministic, standalone and written atomically."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import deepmad
from conftest import design_resolution, import_file, inner_kept, small_arch
from deepmad import BLOCK_TYPES, Architecture, Head, Stage, Stem
from deepmad.model import tinynas
from generators import pytorch as gen

REPO = Path(__file__).resolve().parents[1]
BLOCKS = sorted(BLOCK_TYPES)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: the models are small, and on a busy machine more threads
    spin-wait for each other (several times slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _macs(model: torch.nn.Module, x: torch.Tensor):
    """(output, MACs) of one forward: half of what FlopCounterMode counts."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return out, flops // 2


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _head_row(arch: Architecture) -> tuple[int, int]:
    """(params, macs) of the head conv row of the accounting (zero when there is none)."""
    rows = [r for r in deepmad.layer_costs(arch) if r.name == "head"]
    assert len(rows) == (1 if arch.head else 0)
    return (rows[0].params, rows[0].macs) if rows else (0, 0)


# -- published structures: counts are exact ------------------------------------


def test_published_set_is_complete(published_dir):
    from conftest import PUBLISHED_NAMES

    assert sorted(p.name for p in published_dir.glob("*.txt")) == sorted(PUBLISHED_NAMES)


def test_published_model_counts_exactly(published_file, tmp_path):
    r = design_resolution(published_file)
    arch = tinynas.load(published_file, resolution=r)
    c = deepmad.costs(arch)
    mod = import_file(gen.write(arch, tmp_path / "model.py"))
    assert mod.EXPECTED["resolution"] == r
    assert mod.EXPECTED["flops_tinynas"] == c.flops_tinynas
    assert mod.EXPECTED["backbone_params"] == c.params
    assert mod.EXPECTED["backbone_macs"] == c.macs

    # The classifier network as build_model() makes it, on real tensors.
    model = mod.build_model().eval()
    out, macs = _macs(model, torch.zeros(1, 3, r, r))
    assert out.shape == (1, arch.num_classes)
    assert macs == mod.EXPECTED["macs"] == c.macs_with_classifier
    assert _params(model) == mod.EXPECTED["params"] == c.params_with_classifier
    del model

    # Backbone (head conv, no classifier) and features-only (no head conv either):
    # shapes and counts only, so on the meta device (no allocation, no init cost).
    head_params, head_macs = _head_row(arch)
    with torch.device("meta"):
        backbone = mod.build_model(num_classes=0).eval()
        features = mod.build_model(features_only=True).eval()
        x = torch.empty(1, 3, r, r)
    pooled, macs = _macs(backbone, x)
    assert pooled.shape == (1, arch.out_channels)
    assert macs == mod.EXPECTED["backbone_macs"]
    assert _params(backbone) == mod.EXPECTED["backbone_params"]

    maps, macs = _macs(features, x)
    assert macs == mod.EXPECTED["backbone_macs"] - head_macs
    assert _params(features) == mod.EXPECTED["backbone_params"] - head_params
    assert [tuple(m.shape) for m in maps] == [
        (1, lv.channels, r // lv.reduction, r // lv.reduction) for lv in arch.levels()
    ]


# -- small designs: forward, resolutions, features ----------------------------


@pytest.fixture(params=BLOCKS)
def small(request, tmp_path):
    arch = small_arch(request.param)
    return arch, import_file(gen.write(arch, tmp_path / "small.py"))


def test_forward_at_design_and_other_resolution(small):
    arch, mod = small
    model = mod.build_model().eval()
    assert arch.total_stride == 16
    c = deepmad.costs(arch)
    for side in (arch.resolution, 3 * arch.total_stride, 2 * arch.total_stride):
        out, macs = _macs(model, torch.randn(2, 3, side, side))
        assert out.shape == (2, arch.num_classes)
        assert torch.isfinite(out).all()
        if side == arch.resolution:
            assert macs == 2 * c.macs_with_classifier  # batch of 2


def test_features_only_shapes(small):
    arch, mod = small
    assert mod.FEATURES == [
        dict(after_stage=lv.last_stage, num_chs=lv.channels, reduction=lv.reduction) for lv in arch.levels()
    ]
    model = mod.build_model(features_only=True).eval()
    assert [dict(f, index=i) for i, f in enumerate(mod.FEATURES)] == model.feature_info
    for side in (arch.resolution, 2 * arch.total_stride):
        with torch.no_grad():
            maps = model(torch.randn(2, 3, side, side))
        assert isinstance(maps, list) and len(maps) == len(mod.FEATURES)
        for fmap, info in zip(maps, mod.FEATURES):
            assert tuple(fmap.shape) == (2, info["num_chs"], side // info["reduction"], side // info["reduction"])


def test_features_only_out_indices_select_a_subset(small):
    arch, mod = small
    n = len(mod.FEATURES)
    full = mod.build_model(features_only=True).eval()
    x = torch.randn(1, 3, arch.resolution, arch.resolution)
    with torch.no_grad():
        every = full(x)
    for indices in [(1, 3), (0,), (n - 1,), (-1,), (-2, -1), tuple(range(n))]:
        part = mod.build_model(features_only=True, out_indices=indices).eval()
        part.load_state_dict(full.state_dict())
        with torch.no_grad():
            maps = part(x)
        assert len(maps) == len(indices)
        for got, i in zip(maps, indices):
            assert torch.equal(got, every[i])
        assert [f["index"] for f in part.feature_info] == list(indices)
        assert [f["num_chs"] for f in part.feature_info] == [mod.FEATURES[i]["num_chs"] for i in indices]


def test_features_only_out_of_range_indices_raise(small):
    _, mod = small
    n = len(mod.FEATURES)
    for bad in [(n,), (0, n + 3), (-n - 1,)]:
        with pytest.raises(ValueError, match="out_indices"):
            mod.build_model(features_only=True, out_indices=bad)


def test_features_only_builds_no_head_or_classifier(small):
    arch, mod = small
    model = mod.build_model(features_only=True)
    names = {name for name, _ in model.named_modules()}
    assert "head" not in names and "fc" not in names
    assert _params(model) == deepmad.costs(arch).params - _head_row(arch)[0]


def test_num_classes_zero_returns_pooled_features(small):
    arch, mod = small
    model = mod.build_model(num_classes=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, arch.resolution, arch.resolution))
    assert out.shape == (2, arch.out_channels)
    assert _params(model) == mod.EXPECTED["backbone_params"]


def test_accounting_rows_name_modules_of_the_generated_model(small):
    """Every row (main path, SE, shortcut, stem, head, classifier) names a module with that many parameters."""
    arch, mod = small
    modules = dict(mod.build_model().named_modules())
    for row in deepmad.layer_costs(arch):
        assert row.name in modules, row.name
        assert _params(modules[row.name]) == row.params, row.name


def test_accounting_shortcut_rows_name_modules_of_the_generated_model(tmp_path):
    arch = small_arch("bottleneck")
    modules = dict(import_file(gen.write(arch, tmp_path / "m.py")).build_model().named_modules())
    rows = [r for r in deepmad.layer_costs(arch) if r.kind in ("shortcut", "pool")]
    assert rows
    for row in rows:
        assert row.name in modules, row.name


def test_training_mode_inverted_residual_se(tmp_path):
    """SE's BatchNorm runs on a 1x1 map: a batch of 2 must train."""
    arch = small_arch("inverted_residual_se")
    mod = import_file(gen.write(arch, tmp_path / "se.py"))
    model = mod.build_model().train()
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    out = model(x)
    assert out.shape == (2, arch.num_classes)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    se_bn = [m for name, m in model.named_modules() if ".se." in name and isinstance(m, torch.nn.BatchNorm2d)]
    assert se_bn and all(int(m.num_batches_tracked) == 1 for m in se_bn)


# -- random small designs: the generated model counts what the accounting says --


@st.composite
def tiny_architectures(draw):
    n = draw(st.integers(1, 5))
    stem = Stem(channels=draw(st.integers(1, 8)), kernel=draw(st.sampled_from([1, 3])), stride=draw(st.sampled_from([1, 2])))
    stages = tuple(
        inner_kept(Stage,
            block=draw(st.sampled_from(BLOCKS)),
            channels=draw(st.integers(1, 8)),
            inner=draw(st.integers(1, 12)),
            kernel=draw(st.sampled_from([1, 3, 5])),
            depth=draw(st.integers(1, 2)),
            stride=draw(st.sampled_from([1, 2])),
        )
        for _ in range(n)
    )
    head = draw(st.none() | st.builds(Head, st.integers(1, 8)))
    total = stem.stride * math.prod(s.stride for s in stages)
    resolution = total * draw(st.integers(1, max(1, 32 // total)))
    return Architecture(stem=stem, stages=stages, head=head, resolution=resolution,
                        in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 5)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=tiny_architectures())
def test_random_models_count_exactly(arch, tmp_path):
    mod = import_file(gen.write(arch, tmp_path / "rand.py"))
    model = mod.build_model().eval()
    r = arch.resolution
    out, macs = _macs(model, torch.randn(1, arch.in_channels, r, r))
    c = deepmad.costs(arch)
    assert out.shape == (1, arch.num_classes)
    assert macs == mod.EXPECTED["macs"] == c.macs_with_classifier
    assert _params(model) == mod.EXPECTED["params"] == c.params_with_classifier
    with torch.no_grad():
        maps = mod.build_model(features_only=True).eval()(torch.randn(1, arch.in_channels, r, r))
    assert [tuple(m.shape) for m in maps] == [(1, lv.channels, r // lv.reduction, r // lv.reduction) for lv in arch.levels()]


# -- the file itself ----------------------------------------------------------


@pytest.fixture(params=BLOCKS)
def arch(request):
    return small_arch(request.param, name=f"small-{request.param}")


def test_render_is_deterministic(arch, tmp_path):
    text = gen.render(arch)
    assert gen.render(arch) == text
    # An equal architecture built another way renders the same text.
    assert gen.render(Architecture.from_json(arch.to_json())) == text
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    gen.write(arch, a)
    first = a.read_bytes()
    gen.write(arch, a)
    gen.write(arch, b)
    assert a.read_bytes() == first == b.read_bytes() == text.encode("utf-8")


def test_render_is_deterministic_across_processes():
    """Hash randomisation must not change the text."""
    arch = small_arch("inverted_residual_se", name="x")
    code = textwrap.dedent(
        """
        import sys
        from deepmad import Architecture
        from generators import pytorch as gen
        sys.stdout.write(gen.render(Architecture.from_json(sys.stdin.read())))
        """
    )
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", code], input=arch.to_json(), capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=60, check=True)
        outputs.add(done.stdout)
    assert outputs == {gen.render(arch)}


def test_file_parses_and_imports_only_torch_and_stdlib(arch):
    tree = ast.parse(gen.render(arch))
    allowed = set(sys.stdlib_module_names) | {"torch"}
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Name):
            assert node.id not in ("__import__", "importlib"), "dynamic import"
    assert "torch" in imported
    assert imported <= allowed, imported - allowed


def test_file_runs_without_deepmad_installed(tmp_path):
    """The model file is standalone: importing it must not need deepmad or generators."""
    arch = small_arch("bottleneck")
    path = gen.write(arch, tmp_path / "standalone.py")
    code = textwrap.dedent(
        f"""
        import importlib.abc, importlib.util, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("deepmad", "generators"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import torch
        spec = importlib.util.spec_from_file_location("standalone", {str(path)!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = mod.build_model().eval()(torch.zeros(1, 3, {arch.resolution}, {arch.resolution}))
        assert tuple(out.shape) == (1, {arch.num_classes}), out.shape
        assert not any(m.split(".")[0] in ("deepmad", "generators") for m in sys.modules)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_file_exposes_architecture(arch, tmp_path):
    mod = import_file(gen.write(arch, tmp_path / "m.py"))
    assert mod.ARCHITECTURE == arch.to_dict()
    back = Architecture.from_dict(mod.ARCHITECTURE)
    assert back == arch
    assert back.name == arch.name
    c = deepmad.costs(arch)
    assert mod.EXPECTED == {
        "params": c.params_with_classifier,
        "macs": c.macs_with_classifier,
        "backbone_params": c.params,
        "backbone_macs": c.macs,
        "flops_tinynas": c.flops_tinynas,
        "resolution": arch.resolution,
    }


def test_default_num_classes_is_the_architectures(tmp_path):
    arch = small_arch("basic", num_classes=7)
    mod = import_file(gen.write(arch, tmp_path / "m.py"))
    assert mod.build_model().fc.out_features == 7
    assert mod.build_model(num_classes=3).fc.out_features == 3


# -- atomic write -------------------------------------------------------------


def test_write_replaces_an_existing_file_whole(tmp_path):
    arch = small_arch("basic")
    target = tmp_path / "model.py"
    target.write_text("# old\n" * 100_000)  # longer than the new text
    assert gen.write(arch, target) == target
    assert target.read_text(encoding="utf-8") == gen.render(arch)
    assert os.listdir(tmp_path) == ["model.py"]


def test_write_accepts_a_str_path(tmp_path):
    arch = small_arch("basic")
    gen.write(arch, str(tmp_path / "m.py"))
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == gen.render(arch)


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync", "render"])
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, failing):
    arch = small_arch("bottleneck")
    target = tmp_path / "model.py"
    target.write_bytes(b"old contents\n")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "render":
        monkeypatch.setattr(gen, "costs", boom)
    else:
        monkeypatch.setattr(os, failing.split(".")[1], boom)
    # The OSError may reach the caller as is or as an InputError naming the path.
    with pytest.raises((OSError, deepmad.InputError)):
        gen.write(arch, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents\n"
    assert os.listdir(tmp_path) == ["model.py"]


def test_write_into_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(deepmad.InputError):
        gen.write(small_arch("basic"), tmp_path / "missing" / "model.py")
    assert os.listdir(tmp_path) == []


def test_the_measurer_process_counts_as_measure_does_after_its_warm_up():
    """The second process a design command starts (torch imported and warmed up during the solve)
    gives the same counts as measuring here, for a network with every block type."""
    from generators.pytorch import Measurer, measure, render

    stages = tuple(inner_kept(Stage, block=name, channels=24, inner=16, kernel=5, depth=2, stride=2) for name in BLOCK_TYPES)
    text = render(Architecture(stem=Stem(channels=16), stages=stages, resolution=128))
    expected = measure(text)
    measurer = Measurer()
    try:
        assert measurer.proc is not None
        assert measurer.measure(text) == expected
        assert measurer.proc is None  # one measurement per process
    finally:
        measurer.close()


def test_the_measurer_answers_from_its_process(monkeypatch):
    """The counts come from the second process's answer line, not from measuring here."""
    from generators import pytorch

    text = pytorch.render(small_arch("basic"))
    expected = pytorch.measure(text)
    measurer = pytorch.Measurer()
    monkeypatch.setattr(pytorch, "measure", lambda text: pytest.fail("measured here, not in the second process"))
    try:
        assert measurer.measure(text) == expected
    finally:
        measurer.close()


# -- initialisation and timm's handles ----------------------------------------


def _residual_blocks(mod, model):
    return [m for m in model.modules() if isinstance(m, mod.Block) and m.shortcut is not None]


def test_zero_init_residual_zeroes_the_last_batchnorm_of_every_residual_branch(small):
    arch, mod = small
    model = mod.build_model()
    blocks = _residual_blocks(mod, model)
    assert len(blocks) == sum(1 for *_, layout in arch.blocks() if layout.shortcut != "none")
    assert blocks or all(layout.shortcut == "none" for *_, layout in arch.blocks())  # plain blocks have none
    assert all(torch.count_nonzero(b.convs[-1][1].weight) == 0 for b in blocks)
    # every other BatchNorm starts at 1 / 0, and no conv is left at torch's default init
    last = {id(b.convs[-1][1]) for b in blocks}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.bias == 0)
            assert torch.all(m.weight == (0 if id(m) in last else 1))
    off = mod.build_model(zero_init_residual=False)
    assert all(torch.all(b.convs[-1][1].weight == 1) for b in _residual_blocks(mod, off))
    backbone = mod.build_model(features_only=True)  # a backbone is initialised the same way
    assert all(torch.count_nonzero(b.convs[-1][1].weight) == 0 for b in _residual_blocks(mod, backbone))


def test_init_is_kaiming_fan_out_for_convs_and_small_normal_for_the_classifier():
    torch.manual_seed(0)
    arch = Architecture(stem=Stem(channels=64), stages=(Stage("basic", channels=256, inner=256, kernel=3, depth=1, stride=2),),
                        resolution=32, num_classes=1000)
    model = gen.build(arch)
    conv = model.stages[0][0].convs[0][0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(model.fc.bias == 0)


def test_reset_and_get_classifier(small):
    arch, mod = small
    model = mod.build_model().eval()
    assert model.get_classifier() is model.fc
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.pretrained_cfg["num_classes"] == 7
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert model.get_classifier().out_features == 7
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, model.num_features)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(3, global_pool="max")
    with pytest.raises(RuntimeError, match="features_only"):
        mod.build_model(features_only=True).reset_classifier(3)


def test_default_config_in_timms_spelling(small):
    arch, mod = small
    model = mod.build_model(num_classes=5)
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    assert cfg["input_size"] == (3, 64, 64) and cfg["num_classes"] == 5
    assert cfg["pool_size"] == (4, 4) and cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bilinear"
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    modules = dict(model.named_modules())
    assert isinstance(modules[cfg["first_conv"]], torch.nn.Conv2d) and modules[cfg["classifier"]] is model.fc


# -- where a design comes from -------------------------------------------------


def test_a_record_goes_into_the_docstring_and_design(tmp_path):
    from deepmad.problem.presets import preset
    from deepmad.solution import Solution, record

    arch = small_arch("bottleneck")
    problem = preset("deepmad-r18")
    # a bound as the solvers give it, a numpy float: the file must hold a literal
    solution = Solution("time_limit", arch, problem.check(arch), np.float64(2 * problem.check(arch).objective), 1.0, "large")
    kept = record(problem, solution, command="deepmad design --preset deepmad-r18")
    mod = import_file(gen.write(arch, tmp_path / "m.py", record=kept))
    assert mod.DESIGN == kept
    assert mod.DESIGN["problem"]["budgets"]["flops"] == 1.82e9
    doc = " ".join(mod.__doc__.split())
    assert "Command (deepmad " in doc and "deepmad design --preset deepmad-r18" in doc
    assert "Problem deepmad-r18: FLOPs <= 1.82G (tinynas convention, classifier excluded); params <= 11.69M" in doc
    assert "rho <= 0.3" in doc and "gap 50.00%" in doc and "time_limit" in doc
    assert import_file(gen.write(arch, tmp_path / "bare.py")).DESIGN is None


def test_an_unnamed_design_is_titled_by_what_it_is():
    assert gen.render(small_arch("basic")).startswith('"""a basic network of 4 stages: a CNN generated by deepmad')
    assert gen.render(small_arch("basic", name="mine")).startswith('"""mine: a CNN')


# -- ONNX ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS)
def test_onnx_export_matches_torch(block, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from generators import onnx as onnx_gen

    arch = small_arch(block)
    path = onnx_gen.write(arch, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = onnx_gen.placeholder_model(arch)
    for batch, side in ((1, 64), (3, 64)):
        x = torch.randn(batch, 3, side, side)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape == (batch, arch.num_classes)
        assert abs(got - want).max() <= 1e-4
        assert abs(want).max() > 1e-3  # the placeholder weights make every layer count
