"""Bad input to every command: one exact line on standard error, exit status 2 (or 1), no file left behind.

Each row of :data:`CASES` is ``(argv, files, status, line)``: the files (name -> text; a name
ending in ``/`` is a folder) are created in an empty working folder, ``deepmad`` runs there with
``argv`` and must print exactly ``line`` (and nothing else) on standard error, exit with
``status``, and leave the folder as it found it. Every error here is raised while the input is
checked, before any measurement or model build; only the two infeasible budgets (exit status 1)
run a solve, of a space small enough to take milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmad.cli import main
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from hwmodels import table as tables

from conftest import synthetic_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "examples" / "bottleneck-example.json").read_text()
E = "deepmad: error: "

# -- inputs ---------------------------------------------------------------------------------------

SMALL = ["--block", "basic", "--strides", "2,2", "--resolution", "32", "--channels", "16:32",
         "--stem-channels", "16:16", "--depth", "1:2", "--kernels", "3"]
_SPACE = DesignSpace(block="basic", resolution=32, strides=(2, 2), depths=((1, 2), (1, 2)), stem_channels=(16, 16),
                     channels=(16, 32), kernels=(3,))
SMALL_ARCH = {"s.json": _SPACE.skeleton().to_json()}
TABLE = tables.dump(synthetic_table(Problem(_SPACE)))  # covers SMALL: a good table
PRESETS = "deepmad-r18, deepmad-r34, deepmad-r50, deepmad-29m-224, deepmad-29m-288, deepmad-50m, deepmad-89m"


def arch(old: str, new: str) -> dict[str, str]:
    """``a.json``: the bottleneck example with one piece of its text replaced."""
    assert old in EXAMPLE
    return {"a.json": EXAMPLE.replace(old, new, 1)}


STEM = "{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2}"
STAGE = {"class": "SuperResK1KXK1", "in": 32, "out": 64, "btn": 16, "k": 3, "s": 2, "L": 1}
TN = ["--tinynas", "n.txt", "--resolution", "224"]


def net(*layers: str) -> dict[str, str]:
    """``n.txt``: a TinyNAS structure of these layer literals."""
    return {"n.txt": "[" + ", ".join(layers) + "]"}


def stage(**changes) -> str:
    """The literal of a good stage layer after the stem, with changes (``None`` drops a key)."""
    d = {k: v for k, v in {**STAGE, **changes}.items() if v is not None}
    return repr(d)


HEADER = {"format": "deepmad-cost-table", "version": 1, "meta": {"device": "cpu", "backend": "torch"}}
ROW = {"op": "conv", "batch": 1, "c_in": 8, "c_out": 16, "kernel": 3, "stride": 1, "size": 32,
       "fused_add": False, "act": "relu", "ms": 0.5, "spread": 0.01, "repeats": 10}


def jsonl(*objs) -> str:
    return "\n".join(json.dumps(o) for o in objs) + "\n"


def lat(table_text: str, *extra: str) -> tuple[list[str], dict[str, str]]:
    """``deepmad latency`` of a small architecture on the table ``t.jsonl`` holding ``table_text``."""
    return ["latency", "s.json", "--table", "t.jsonl", *extra], {**SMALL_ARCH, "t.jsonl": table_text}


def tline(line: int, reason: str) -> str:
    return f"{E}t.jsonl line {line}: {reason}"


TINY = "{Regular,1,16,32,32,32,3,1,1} 0.25\n{Regular,1,16,32,32,64,3,1,1} -1\n{Depthwise,1,32,16,16,32,5,2,0} 0.125\n"
CONV = "conv_data.fp16.out"
TN_LINE = "expected {Conv_type,Batch,In_C,In_H,In_W,Out_C,Kernel,Stride,ElmtFused} latency_ms"


def imp(text: str, *extra: str) -> tuple[list[str], dict[str, str]]:
    """``deepmad import-table`` of a TinyNAS op-profiler table holding ``text``."""
    return ["import-table", CONV, *extra], {CONV: text}


def usage(command: str, message: str) -> str:
    """An argparse error of ``command``'s parser."""
    return f"{E}{message} (see 'deepmad {command} --help')"


EXPECT_PARAMS = "expected a positive amount such as 1.8G, 11.7M, 250k or 1.82e9"
EXPECT_RANGE = "expected LO:HI with 0 < LO <= HI (e.g. 1:16)"
EXPECT_DURATION = "expected a positive duration such as 12ms, 12 (ms), 0.012s or 800us"
CHOICES = "'score', 'generate', 'design', 'whatif', 'latency', 'profile', 'latency-check', 'import-table', 'tables', 'cache', 'presets', 'convert'"


def case(name: str, argv: list[str], files: dict[str, str] | None, status: int, line: str):
    return pytest.param(argv, files or {}, status, line, id=name)


def d(name: str, extra: list[str], line: str, status: int = 2, files: dict[str, str] | None = None):
    """A ``deepmad design`` case on the small custom problem with ``extra`` options."""
    return case(f"design-{name}", ["design", *SMALL, *extra], files, status, line)


CASES = [
    # -- top level -------------------------------------------------------------------------------
    case("no-command", [], None, 2, f"{E}the following arguments are required: COMMAND (see 'deepmad --help')"),
    case("unknown-command", ["frobnicate"], None, 2,
         f"{E}argument COMMAND: invalid choice: 'frobnicate' (choose from {CHOICES}) (see 'deepmad --help')"),
    case("unknown-top-option", ["--bogus", "score"], None, 2, f"{E}unrecognized arguments: --bogus (see 'deepmad --help')"),
    case("unknown-sub-option", ["score", "a.json", "--bogus"], None, 2, f"{E}unrecognized arguments: --bogus (see 'deepmad --help')"),
    # -- presets, tables ---------------------------------------------------------------------------
    case("presets-extra-arg", ["presets", "extra"], None, 2, f"{E}unrecognized arguments: extra (see 'deepmad --help')"),
    case("presets-option", ["presets", "--preset", "x"], None, 2, f"{E}unrecognized arguments: --preset x (see 'deepmad --help')"),
    case("tables-extra-arg", ["tables", "gpu0"], None, 2, f"{E}unrecognized arguments: gpu0 (see 'deepmad --help')"),
    # -- score: what to read -----------------------------------------------------------------------
    case("score-no-arch", ["score"], None, 2, f"{E}ARCH: missing: give an architecture JSON file, or --tinynas FILE --resolution N"),
    case("score-missing-file", ["score", "nowhere.json"], None, 2, f"{E}nowhere.json: no such file"),
    case("score-arch-is-folder", ["score", "sub"], {"sub/": ""}, 2, f"{E}sub: is a directory, not a file"),
    case("score-arch-and-tinynas", ["score", "a.json", *TN], {"a.json": EXAMPLE}, 2,
         f"{E}ARCH: give either an architecture JSON file or --tinynas FILE, not both"),
    case("score-resolution-without-tinynas", ["score", "a.json", "--resolution", "224"], {"a.json": EXAMPLE}, 2,
         f"{E}--resolution: only used with --tinynas; an architecture JSON file holds its own resolution"),
    case("score-tinynas-without-resolution", ["score", "--tinynas", "n.txt"], None, 2,
         f"{E}--resolution: required with --tinynas (the format does not hold the input size), e.g. --resolution 224"),
    case("score-resolution-zero", ["score", "--tinynas", "n.txt", "--resolution", "0"], None, 2,
         usage("score", "argument --resolution: expected a positive integer, got '0'")),
    case("score-resolution-word", ["score", "--tinynas", "n.txt", "--resolution", "abc"], None, 2,
         usage("score", "argument --resolution: expected a positive integer, got 'abc'")),
    # -- score: scoring options -----------------------------------------------------------------------
    case("score-alpha-not-numbers", ["score", "a.json", "--alpha", "1,x"], {"a.json": EXAMPLE}, 2,
         usage("score", "argument --alpha: expected comma-separated numbers, got '1,x'")),
    case("score-alpha-count", ["score", "a.json", "--alpha", "1,1,8"], {"a.json": EXAMPLE}, 2,
         f"{E}--alpha: needs one weight per scoring prefix: 5 values, got 3"),
    case("score-alpha-inf", ["score", "a.json", "--alpha", "1,1,1,1,inf"], {"a.json": EXAMPLE}, 2,
         f"{E}--alpha: must be a finite number, got inf"),
    case("score-beta-nan", ["score", "a.json", "--beta", "nan"], {"a.json": EXAMPLE}, 2, f"{E}--beta: must be a finite number, got nan"),
    case("score-beta-negative", ["score", "a.json", "--beta", "-1"], {"a.json": EXAMPLE}, 2,
         f"{E}--beta: must be at least 0 (a penalty), got -1.0"),
    case("score-beta-word", ["score", "a.json", "--beta", "x"], {"a.json": EXAMPLE}, 2,
         usage("score", "argument --beta: invalid float value: 'x'")),
    case("score-resolution-not-divisible", ["score", "a.json", "--score-resolution", "100"], {"a.json": EXAMPLE}, 2,
         f"{E}--score-resolution: scoring resolution 100 is not divisible by the total stride 32"),
    case("score-penalty-stage-missing", ["score", "a.json", "--penalty-stages", "7"], {"a.json": EXAMPLE}, 2,
         f"{E}--penalty-stages: stage 7 does not exist; the network has stages 0..4"),
    case("score-penalty-stage-twice", ["score", "a.json", "--penalty-stages", "2,2"], {"a.json": EXAMPLE}, 2,
         f"{E}--penalty-stages: lists a stage twice: [2, 2]"),
    # -- architecture JSON files ---------------------------------------------------------------------
    case("json-empty", ["score", "a.json"], {"a.json": ""}, 2,
         f"{E}a.json: architecture: not valid JSON (Expecting value at line 1 column 1)"),
    case("json-truncated", ["score", "a.json"], {"a.json": EXAMPLE[:100]}, 2,
         f"{E}a.json: architecture: not valid JSON (Expecting ':' delimiter at line 5 column 15)"),
    case("json-list", ["score", "a.json"], {"a.json": "[1, 2, 3]"}, 2, f"{E}a.json: architecture: must be a JSON object, got list"),
    case("json-format", ["score", "a.json"], arch('"format": "deepmad-architecture"', '"format": "onnx"'), 2,
         f"{E}a.json: format: must be 'deepmad-architecture', got 'onnx'"),
    case("json-version", ["score", "a.json"], arch('"version": 1', '"version": 2'), 2,
         f"{E}a.json: version: 2 is not supported; this deepmad reads version 1"),
    case("json-resolution-not-divisible", ["score", "a.json"], arch('"resolution": 224', '"resolution": 200'), 2,
         f"{E}a.json: resolution: 200 is not divisible by the total stride 32; use a multiple of 32 (e.g. 192)"),
    case("json-even-kernel", ["score", "a.json"], arch('"kernel": 3', '"kernel": 4'), 2,
         f"{E}a.json: stem.kernel: must be odd (1, 3, 5, 7, ...), got 4"),
    case("json-depth-zero", ["convert", "a.json", "--to", "tinynas"], arch('"depth": 2', '"depth": 0'), 2,
         f"{E}a.json: stages[0].depth: must be a positive integer, got 0"),
    case("json-nan-channels", ["score", "a.json"], arch('"channels": 32', '"channels": NaN'), 2,
         f"{E}a.json: stem.channels: must be a positive integer, got nan"),
    case("json-stride-3", ["score", "a.json"], arch('"stride": 1', '"stride": 3'), 2, f"{E}a.json: stages[3].stride: must be 1 or 2, got 3"),
    case("json-unknown-block", ["generate", "a.json", "-o", "m.py"], arch('"block": "bottleneck"', '"block": "resnext"'), 2,
         f"{E}a.json: stages[0].block: unknown block type 'resnext'; use one of bottleneck, inverted_residual_se, inverted_residual, basic, plain, large_kernel"),
    case("json-unknown-field", ["convert", "a.json", "--to", "json"], arch('"stages": [', '"colour": "red", "stages": ['), 2,
         f"{E}a.json: colour: unknown field; the fields are format, head, in_channels, name, num_classes, resolution, stages, stem, version"),
    case("json-bad-name", ["generate", "a.json", "-o", "m.py"], arch('"name": "bottleneck-example"', '"name": "x\\"; import os"'), 2,
         f"{E}a.json: name: must be up to 64 letters, digits, '_', '-' or '.', got 'x\"; import os'"),
    case("json-head-not-object", ["generate", "a.json", "-o", "m.py"], arch('"head": null', '"head": 5'), 2,
         f"{E}a.json: head: must be an object, got int"),
    case("json-in-channels-zero", ["latency", "a.json", "--table", "t.jsonl"], {**arch('"in_channels": 3', '"in_channels": 0'), "t.jsonl": TABLE}, 2,
         f"{E}a.json: in_channels: must be a positive integer, got 0"),
    # -- TinyNAS structure files -----------------------------------------------------------------------
    case("tinynas-truncated", ["score", *TN], {"n.txt": "{'best_structures': [[" + STEM + ","}, 2,
         f"{E}n.txt: not a TinyNAS structure: expected a Python literal (dicts, lists, numbers, strings) only"),
    case("tinynas-expression", ["generate", *TN, "-o", "m.py"], {"n.txt": "__import__('os').system('touch PWNED')"}, 2,
         f"{E}n.txt: not a TinyNAS structure: expected a Python literal (dicts, lists, numbers, strings) only"),
    case("tinynas-no-best-structures", ["score", *TN], {"n.txt": "{'structures': []}"}, 2, f"{E}n.txt: best_structures: missing"),
    case("tinynas-two-structures", ["score", *TN], {"n.txt": "{'best_structures': [[], []]}"}, 2,
         f"{E}n.txt: best_structures: must be a list holding one list of layer dicts"),
    case("tinynas-empty-list", ["score", *TN], {"n.txt": "[]"}, 2, f"{E}n.txt: must hold a non-empty list of layer dicts"),
    case("tinynas-not-dicts", ["score", *TN], {"n.txt": "[1, 2]"}, 2, f"{E}n.txt: layer 0: must be a dict, got int"),
    case("tinynas-unknown-class", ["score", *TN], net(STEM, "{'class': 'SuperResFoo', 'in': 32}"), 2,
         f"{E}n.txt: layer 1.class: unknown class 'SuperResFoo'; use one of SuperResK1DWK1, SuperResK1DWSEK1, SuperResK1KXK1, "
         "SuperResKXKX (or ConvKXBNRELU first and last)"),
    case("tinynas-no-stem", ["score", *TN], net(stage(**{"in": 3})), 2,
         f"{E}n.txt: layer 0.class: the first layer must be the ConvKXBNRELU stem, got 'SuperResK1KXK1'"),
    case("tinynas-wrong-inner-class", ["convert", *TN, "--to", "json"], net(STEM, stage(inner_class="ResK1DWK1")), 2,
         f"{E}n.txt: layer 1.inner_class: SuperResK1KXK1 goes with 'ResK1KXK1', got 'ResK1DWK1'"),
    case("tinynas-broken-chain", ["score", *TN], net(STEM, stage(**{"in": 16})), 2,
         f"{E}n.txt: layer 1.in: is 16 but the previous layer outputs 32"),
    case("tinynas-missing-key", ["score", *TN], net(STEM, stage(btn=None)), 2, f"{E}n.txt: layer 1.btn: missing"),
    case("tinynas-unknown-key", ["score", *TN], net(STEM, stage(nbitsA=8)), 2,
         f"{E}n.txt: layer 1.nbitsA: unknown key; a SuperResK1KXK1 layer has L, btn, class, in, inner_class, k, out, s"),
    case("tinynas-depth-zero", ["score", *TN], net(STEM, stage(L=0)), 2, f"{E}n.txt: layer 1.depth: must be a positive integer, got 0"),
    case("tinynas-even-kernel", ["score", *TN], net(STEM, stage(k=2)), 2, f"{E}n.txt: layer 1.kernel: must be odd (1, 3, 5, 7, ...), got 2"),
    case("tinynas-3x3-head", ["score", *TN], net(STEM, stage(), "{'class': 'ConvKXBNRELU', 'in': 64, 'k': 3, 'out': 128, 's': 1}"), 2,
         f"{E}n.txt: layer 2: a head ConvKXBNRELU must be 1x1 with stride 1"),
    case("tinynas-stem-only", ["score", *TN], net(STEM), 2, f"{E}n.txt: stages: at least one stage is needed"),
    case("tinynas-resolution-not-divisible", ["generate", "--tinynas", "n.txt", "--resolution", "30", "-o", "m.py"], net(STEM, stage()), 2,
         f"{E}n.txt: resolution: 30 is not divisible by the total stride 4; use a multiple of 4 (e.g. 32)"),
    case("tinynas-resolution-huge", ["score", "--tinynas", "n.txt", "--resolution", "99999999"], net(STEM, stage()), 2,
         f"{E}n.txt: resolution: must be at most 16,384, got 99999999"),
    # -- generate, convert: outputs ----------------------------------------------------------------------
    case("generate-no-out", ["generate", "a.json"], {"a.json": EXAMPLE}, 2, usage("generate", "the following arguments are required: -o/--out")),
    case("generate-out-missing-folder", ["generate", "a.json", "-o", "nodir/m.py", "--no-verify"], {"a.json": EXAMPLE}, 2,
         f"{E}nodir/m.py: folder 'nodir' does not exist; create it first"),
    case("generate-out-is-folder", ["generate", "a.json", "-o", "sub", "--no-verify"], {"a.json": EXAMPLE, "sub/": ""}, 2,
         f"{E}sub: is a directory; give a file path"),
    case("generate-out-empty", ["generate", "a.json", "-o", "", "--no-verify"], {"a.json": EXAMPLE}, 2,
         f"{E}output: '' is not a file path; give one such as model.py"),
    case("generate-out-exists", ["generate", "a.json", "-o", "m.py", "--no-verify"], {"a.json": EXAMPLE, "m.py": "# mine\n"}, 2,
         f"{E}m.py: exists with other content; pass --force to replace it"),
    case("convert-no-to", ["convert", "a.json"], {"a.json": EXAMPLE}, 2, usage("convert", "the following arguments are required: --to")),
    case("convert-bad-to", ["convert", "a.json", "--to", "onnx"], {"a.json": EXAMPLE}, 2,
         usage("convert", "argument --to: invalid choice: 'onnx' (choose from 'json', 'tinynas')")),
    case("convert-no-arch", ["convert", "--to", "json"], None, 2,
         f"{E}ARCH: missing: give an architecture JSON file, or --tinynas FILE --resolution N"),
    case("convert-missing-tinynas", ["convert", "--to", "json", "--tinynas", "missing.txt", "--resolution", "224"], None, 2,
         f"{E}missing.txt: no such file"),
    case("convert-out-missing-folder", ["convert", "a.json", "--to", "json", "-o", "nodir/x.json"], {"a.json": EXAMPLE}, 2,
         f"{E}nodir/x.json: folder 'nodir' does not exist; create it first"),
    case("convert-out-dot", ["convert", "a.json", "--to", "json", "-o", "."], {"a.json": EXAMPLE}, 2,
         f"{E}output: '.' is not a file path; give one such as model.py"),
    case("convert-out-trailing-slash", ["convert", "a.json", "--to", "tinynas", "-o", "x/"], {"a.json": EXAMPLE}, 2,
         f"{E}output: 'x/' is not a file path; give one such as model.py"),
    case("convert-out-is-folder", ["convert", "a.json", "--to", "json", "-o", "sub"], {"a.json": EXAMPLE, "sub/": ""}, 2,
         f"{E}sub: is a directory; give a file path"),
    # -- design: the problem ----------------------------------------------------------------------------
    case("design-nothing", ["design"], None, 2, f"{E}--block: give --preset NAME, or a custom problem with at least --block and --strides"),
    case("design-block-only", ["design", "--block", "basic"], None, 2,
         f"{E}--block: give --preset NAME, or a custom problem with at least --block and --strides"),
    case("design-preset-typo", ["design", "--preset", "deepmad-r19"], None, 2,
         f"{E}--preset: unknown preset 'deepmad-r19'; did you mean deepmad-r18, deepmad-r50, deepmad-r34? the presets are {PRESETS}"),
    case("design-preset-unknown", ["design", "--preset", "resnet50"], None, 2,
         f"{E}--preset: unknown preset 'resnet50'; the presets are {PRESETS}"),
    case("design-unknown-block", ["design", "--block", "resnext", "--strides", "2,2"], None, 2,
         usage("design", "argument --block: invalid choice: 'resnext' (choose from 'bottleneck', 'inverted_residual_se', "
                         "'inverted_residual', 'basic', 'plain', 'large_kernel')")),
    case("design-preset-resolution", ["design", "--preset", "deepmad-r18", "--resolution", "100"], None, 2,
         f"{E}--resolution: 100 is not divisible by the total stride 32; use a multiple of 32 (e.g. 96)"),
    case("design-preset-head-huge", ["design", "--preset", "deepmad-29m-224", "--head", "1000000"], None, 2,
         f"{E}--head: must be at most 65,536, got 1000000"),
    case("design-preset-too-big-for-milp", ["design", "--preset", "deepmad-r18", "--method", "milp"], None, 2,
         f"{E}space: has up to 1,477,612,704 stage options; the exact program handles at most 2,000,000: "
         "use --method large (or auto), or narrow the channel, inner, kernel or depth ranges"),
    # budgets
    d("flops-zero", ["--flops", "0"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got '0'")),
    d("flops-negative", ["--flops", "-5"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got '-5'")),
    d("flops-nan", ["--flops", "nan"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got 'nan'")),
    d("flops-inf", ["--flops", "inf"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got 'inf'")),
    d("flops-bad-unit", ["--flops", "1.8Gb"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got '1.8Gb'")),
    d("flops-time-unit", ["--flops", "12 ms"], usage("design", f"argument --flops: {EXPECT_PARAMS}, got '12 ms'")),
    d("params-overflow", ["--params", "1e999"], usage("design", f"argument --params: {EXPECT_PARAMS}, got '1e999'")),
    d("params-empty", ["--params", ""], usage("design", f"argument --params: {EXPECT_PARAMS}, got ''")),
    d("rho-zero", ["--rho", "0"], usage("design", f"argument --rho: {EXPECT_PARAMS}, got '0'")),
    d("max-layers-zero", ["--max-layers", "0"], usage("design", "argument --max-layers: expected a positive integer, got '0'")),
    d("max-depth-spread-negative", ["--max-depth-spread", "-1"],
      usage("design", "argument --max-depth-spread: expected an integer >= 0, got '-1'")),
    d("flops-convention", ["--flops-convention", "gmacs"],
      usage("design", "argument --flops-convention: invalid choice: 'gmacs' (choose from 'tinynas', 'macs')")),
    # ranges
    d("depth-reversed", ["--depth", "5:2"], usage("design", f"argument --depth: {EXPECT_RANGE}, got '5:2'")),
    d("depth-zero", ["--depth", "0"], usage("design", f"argument --depth: {EXPECT_RANGE}, got '0'")),
    d("depth-three-parts", ["--depth", "1:2:3"], usage("design", f"argument --depth: {EXPECT_RANGE}, got '1:2:3'")),
    d("depth-huge", ["--depth", "1:5000"], f"{E}--depth: needs max <= 1,000 blocks per stage, got (1, 5000)"),
    d("channels-reversed", ["--channels", "64:8"], usage("design", f"argument --channels: {EXPECT_RANGE}, got '64:8'")),
    d("channels-off-grid", ["--channels", "9:15"], f"{E}--channels: no multiple of 8 lies in the channel ranges"),
    d("stem-channels-words", ["--stem-channels", "a:b"], usage("design", f"argument --stem-channels: {EXPECT_RANGE}, got 'a:b'")),
    d("stem-channels-huge", ["--stem-channels", "16:100000"], f"{E}--stem-channels: needs max <= 65,536 channels, got (16, 100000)"),
    d("kernels-empty", ["--kernels", ""], f"{E}--kernels: needs a non-empty set of odd positive kernels, got ()"),
    d("kernels-even", ["--kernels", "3,4"], f"{E}--kernels: needs a non-empty set of odd positive kernels, got (3, 4)"),
    d("kernels-negative", ["--kernels", "-3"], f"{E}--kernels: needs a non-empty set of odd positive kernels, got (-3,)"),
    d("kernels-word", ["--kernels", "x"], usage("design", "argument --kernels: expected comma-separated integers, got 'x'")),
    d("kernels-huge", ["--kernels", "3,33"], f"{E}--kernels: needs kernels <= 31, got (3, 33)"),
    d("inner-ratio-reversed", ["--inner-ratio", "6:1.5"], f"{E}--inner-ratio: needs 0 < lo <= hi, got (6.0, 1.5)"),
    d("inner-ratio-inf", ["--inner-ratio", "1:inf"], f"{E}--inner-ratio: needs a finite hi, got (1.0, inf)"),
    d("inner-ratio-word", ["--inner-ratio", "x"], usage("design", "argument --inner-ratio: expected LO:HI such as 1.5:6, got 'x'")),
    d("head-zero", ["--head", "0"], usage("design", "argument --head: expected a positive integer, got '0'")),
    d("resolution-not-divisible", ["--resolution", "30"], f"{E}--resolution: 30 is not divisible by the total stride 8; use a multiple of 8 (e.g. 32)"),
    d("resolution-huge", ["--resolution", "99999999"], f"{E}--resolution: must be at most 16,384, got 99999999"),
    d("strides-empty", ["--strides", ""], f"{E}--strides: at least one stage is needed"),
    d("strides-3", ["--strides", "3,2"], f"{E}--strides: must be 1 or 2, got 3"),
    # solver options
    d("time-limit-zero", ["--time-limit", "0"], f"{E}--time-limit: must be a positive number of seconds, got 0.0"),
    d("time-limit-negative", ["--time-limit", "-1"], f"{E}--time-limit: must be a positive number of seconds, got -1.0"),
    d("time-limit-nan", ["--time-limit", "nan"], f"{E}--time-limit: must be a positive number of seconds, got nan"),
    d("time-limit-inf", ["--time-limit", "inf"], f"{E}--time-limit: must be a positive number of seconds, got inf"),
    d("time-limit-unit", ["--time-limit", "5m"], usage("design", "argument --time-limit: invalid float value: '5m'")),
    d("gap-one", ["--gap", "1"], f"{E}--gap: must be a relative gap in [0, 1), got 1.0"),
    d("gap-negative", ["--gap", "-0.1"], f"{E}--gap: must be a relative gap in [0, 1), got -0.1"),
    d("gap-nan", ["--gap", "nan"], f"{E}--gap: must be a relative gap in [0, 1), got nan"),
    d("gap-word", ["--gap", "x"], usage("design", "argument --gap: invalid float value: 'x'")),
    d("method", ["--method", "brute"], usage("design", "argument --method: invalid choice: 'brute' (choose from 'auto', 'milp', 'large')")),
    d("batch-zero", ["--batch", "0"], usage("design", "argument --batch: expected a positive integer, got '0'")),
    # latency budgets and tables
    d("latency-without-table", ["--latency", "12ms"], f"{E}--latency: needs --table: a cost table file or the device name of an imported table"),
    d("latency-parsecs", ["--latency", "12parsecs", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got '12parsecs'")),
    d("latency-zero", ["--latency", "0ms", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got '0ms'")),
    d("latency-negative", ["--latency=-3ms", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got '-3ms'")),
    d("latency-nan", ["--latency", "nan", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got 'nan'")),
    d("latency-inf", ["--latency", "infms", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got 'infms'")),
    d("table-missing-file", ["--latency", "12 ms", "--table", "nowhere.jsonl"], f"{E}nowhere.jsonl: no such file"),
    d("table-unknown-device", ["--latency", "3ms", "--table", "no-such-device"],
      f"{E}--table: no table file or device named 'no-such-device' (none is installed in tables; use 'deepmad import-table')"),
    d("table-batch-missing", ["--latency", "3ms", "--table", "t.jsonl", "--batch", "4"], f"{E}--batch: the table has no rows for batch 4; it has 1",
      files={"t.jsonl": TABLE}),
    d("table-header-only", ["--latency", "3ms", "--table", "t.jsonl"],
      f"{E}t.jsonl: holds no measured rows, only its header; profile or import a table with rows", files={"t.jsonl": jsonl(HEADER)}),
    case("design-table-not-covering", ["design", "--preset", "deepmad-r18", "--latency", "9ms", "--table", "t.jsonl"], {"t.jsonl": TABLE}, 2,
         f"{E}t.jsonl: has no conv rows with kernel 1, stride 1, activation relu; it has k1 s1 none, k3 s1 relu, k3 s1 +add relu, "
         "k3 s2 relu, k3 s2 +add relu; profile a table that covers this space"),
    # budgets no design meets: a (tiny) solve that proves it, exit status 1, and no output written
    d("flops-below-smallest", ["--flops", "10k", "-o", "m.py"],
      "deepmad: infeasible: no design of the space meets the budgets: flops: the limit 10,000 is below the smallest value the space "
      "allows, 600,320", status=1),
    d("layers-below-smallest", ["--max-layers", "1"],
      "deepmad: infeasible: no design of the space meets the budgets: layers: the limit 1 is below the smallest value the space allows, 5",
      status=1),
    # outputs
    d("out-exists", ["-o", "m.py"], f"{E}m.py: exists; pass --force to replace it", files={"m.py": "# mine\n"}),
    d("json-exists", ["--json", "r.json"], f"{E}r.json: exists; pass --force to replace it", files={"r.json": "{}\n"}),
    # -- latency and cost-table files ----------------------------------------------------------------------
    case("latency-no-table", ["latency", "s.json"], SMALL_ARCH, 2, usage("latency", "the following arguments are required: --table")),
    case("latency-no-arch", ["latency", "--table", "t.jsonl"], {"t.jsonl": TABLE}, 2,
         f"{E}ARCH: missing: give an architecture JSON file, or --tinynas FILE --resolution N"),
    case("latency-tinynas-no-resolution", ["latency", "--tinynas", "n.txt", "--table", "t.jsonl"], {"t.jsonl": TABLE}, 2,
         f"{E}--resolution: required with --tinynas (the format does not hold the input size), e.g. --resolution 224"),
    case("latency-missing-table", ["latency", "s.json", "--table", "t.jsonl"], SMALL_ARCH, 2, f"{E}t.jsonl: no such file"),
    case("latency-unknown-device", ["latency", "s.json", "--table", "gpu0"], SMALL_ARCH, 2,
         f"{E}--table: no table file or device named 'gpu0' (none is installed in tables; use 'deepmad import-table')"),
    case("latency-table-is-folder", ["latency", "s.json", "--table", "t.jsonl"], {**SMALL_ARCH, "t.jsonl/": ""}, 2,
         f"{E}t.jsonl: is a directory, not a file"),
    case("latency-bad-arch", ["latency", "s.json", "--table", "t.jsonl"], {"s.json": "{", "t.jsonl": TABLE}, 2,
         f"{E}s.json: architecture: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    case("latency-batch-zero", *lat(TABLE, "--batch", "0"), 2, usage("latency", "argument --batch: expected a positive integer, got '0'")),
    case("latency-batch-missing", *lat(TABLE, "--batch", "4"), 2, f"{E}--batch: the table has no rows for batch 4; it has 1"),
    case("table-empty", *lat(""), 2, f"{E}t.jsonl: is empty; a cost table starts with its header line"),
    case("table-blank-lines", *lat("\n\n"), 2, f"{E}t.jsonl: is empty; a cost table starts with its header line"),
    case("table-truncated-header", *lat('{"format": "deepmad-cost-table", "vers'), 2,
         tline(1, "not valid JSON (Unterminated string starting at: line 1 column 34 (char 33))")),
    case("table-bad-header", *lat(jsonl({"format": "other"})), 2,
         tline(1, 'the first line must be the header {"format": "deepmad-cost-table", "version": 1, "meta": {...}}')),
    case("table-newer-version", *lat(jsonl({**HEADER, "version": 2})), 2, tline(1, "version 2 is newer than this deepmad reads (1); upgrade deepmad")),
    case("table-version-string", *lat(jsonl({**HEADER, "version": "1"})), 2, tline(1, "version must be a positive integer, got '1'")),
    case("table-no-meta", *lat(jsonl({k: v for k, v in HEADER.items() if k != "meta"})), 2, tline(1, "the header needs a meta object")),
    case("table-no-device", *lat(jsonl({**HEADER, "meta": {"backend": "torch"}})), 2, tline(1, "meta.device must be a non-empty string")),
    case("table-unknown-meta", *lat(jsonl({**HEADER, "meta": {**HEADER["meta"], "gpu": "x"}})), 2,
         tline(1, "unknown meta field gpu; the fields are device, backend, dtype, threads, date, protocol, source, channel_block, calibration")),
    case("table-threads-zero", *lat(jsonl({**HEADER, "meta": {**HEADER["meta"], "threads": 0}})), 2,
         tline(1, "meta.threads must be a positive integer or null, got 0")),
    case("table-bad-calibration", *lat(jsonl({**HEADER, "meta": {**HEADER["meta"], "calibration": {"scale": -1}}})), 2,
         tline(1, "meta.calibration must be null or an object with scale, per_unit_ms, per_mweight_ms, fixed_ms, designs "
                  "(and optionally per_melement_ms)")),
    case("table-missing-column", *lat(jsonl(HEADER, {k: v for k, v in ROW.items() if k != "ms"})), 2, tline(2, "missing column ms")),
    case("table-duplicate-row", *lat(jsonl(HEADER, ROW, ROW)), 2, tline(3, "the same unit and batch as line 2")),
    case("table-nan-latency", *lat(json.dumps(HEADER) + "\n" + json.dumps(ROW).replace('"ms": 0.5', '"ms": NaN') + "\n"), 2,
         tline(2, "NaN is not a number JSON allows")),
    case("table-infinite-latency", *lat(json.dumps(HEADER) + "\n" + json.dumps(ROW).replace('"ms": 0.5', '"ms": Infinity') + "\n"), 2,
         tline(2, "Infinity is not a number JSON allows")),
    case("table-negative-latency", *lat(jsonl(HEADER, {**ROW, "ms": -1})), 2,
         tline(2, "ms must be a finite number >= 0, got -1 (failed measurements are left out)")),
    case("table-unknown-op", *lat(jsonl(HEADER, {**ROW, "op": "lstm"})), 2, tline(2, "op must be one of conv, dwconv, se, pool, classifier, got 'lstm'")),
    case("table-unknown-act", *lat(jsonl(HEADER, {**ROW, "act": "tanh"})), 2, tline(2, "act must be one of relu, silu, none, any, gelu, got 'tanh'")),
    case("table-zero-width", *lat(jsonl(HEADER, {**ROW, "c_in": 0})), 2, tline(2, "c_in must be an integer from 1 to 1048576, got 0")),
    case("table-fused-add-int", *lat(jsonl(HEADER, {**ROW, "fused_add": 1})), 2, tline(2, "fused_add must be true or false, got 1")),
    case("table-unknown-column", *lat(jsonl(HEADER, {**ROW, "colour": 1})), 2,
         tline(2, "unknown column colour; the columns are op, batch, c_in, c_out, kernel, stride, size, fused_add, act, ms, spread, repeats")),
    case("table-row-not-object", *lat(jsonl(HEADER, [1, 2])), 2, tline(2, "a row must be a JSON object, got list")),
    case("table-dwconv-widths", *lat(jsonl(HEADER, {**ROW, "op": "dwconv"})), 2, tline(2, "a dwconv row needs c_in == c_out, got 8 and 16")),
    case("table-negative-spread", *lat(jsonl(HEADER, {**ROW, "spread": -1})), 2, tline(2, "spread must be a finite number >= 0 or null, got -1")),
    case("table-zero-repeats", *lat(jsonl(HEADER, {**ROW, "repeats": 0})), 2, tline(2, "repeats must be a positive integer or null, got 0")),
    case("table-truncated-row", *lat(json.dumps(HEADER) + "\n" + json.dumps(ROW)[:40]), 2,
         tline(2, "not valid JSON (Unterminated string starting at: line 1 column 39 (char 38))")),
    case("table-header-only", *lat(jsonl(HEADER)), 2, f"{E}t.jsonl: holds no measured rows, only its header; profile or import a table with rows"),
    case("table-not-covering", *lat(jsonl(HEADER, ROW)), 2,
         f"{E}t.jsonl: has no conv rows with kernel 3, stride 2, activation relu; it has k3 s1 relu; profile a table that covers this space"),
    # -- profile (errors found before measuring) -------------------------------------------------------------
    case("profile-no-out", ["profile", *SMALL], None, 2, usage("profile", "the following arguments are required: -o/--out")),
    case("design-space-without-preset", ["design", *SMALL, "--space", "reference"], None, 2,
         f"{E}--space: chooses a preset's space: give --preset NAME too"),
    case("profile-too-few-calibration-designs", ["profile", *SMALL, "--calibrate", "2", "-o", "t.jsonl"], None, 2,
         f"{E}--calibrate: needs 0 (no calibration) or at least 4 designs (it fits four terms), got 2"),
    case("score-infeasible-result", ["score", "r.json"], {"r.json": json.dumps({"format": "deepmad-result", "version": 1,
                                                                                "status": "infeasible", "architecture": None})}, 2,
         f"{E}r.json: is a result with status 'infeasible' and no design to read"),
    case("profile-no-problem", ["profile", "-o", "t.jsonl"], None, 2,
         f"{E}--block: give --preset NAME, or a custom problem with at least --block and --strides"),
    case("profile-preset-typo", ["profile", "--preset", "deepmad-r19", "-o", "t.jsonl"], None, 2,
         f"{E}--preset: unknown preset 'deepmad-r19'; did you mean deepmad-r18, deepmad-r50, deepmad-r34? the presets are {PRESETS}"),
    case("profile-threads-zero", ["profile", *SMALL, "-o", "t.jsonl", "--threads", "0"], None, 2,
         usage("profile", "argument --threads: expected a positive integer, got '0'")),
    case("profile-batch-word", ["profile", *SMALL, "-o", "t.jsonl", "--batch", "x"], None, 2,
         usage("profile", "argument --batch: expected a positive integer, got 'x'")),
    case("profile-calibrate-negative", ["profile", *SMALL, "-o", "t.jsonl", "--calibrate", "-1"], None, 2,
         usage("profile", "argument --calibrate: expected an integer >= 0, got '-1'")),
    case("profile-flops-zero", ["profile", *SMALL, "-o", "t.jsonl", "--flops", "0"], None, 2,
         usage("profile", f"argument --flops: {EXPECT_PARAMS}, got '0'")),
    # -- latency-check ----------------------------------------------------------------------------------
    case("check-no-table", ["latency-check"], None, 2, usage("latency-check", "the following arguments are required: --table")),
    case("check-unknown-device-table", ["latency-check", "--table", "gpu0"], None, 2,
         f"{E}--table: no table file or device named 'gpu0' (none is installed in tables; use 'deepmad import-table')"),
    case("check-empty-table", ["latency-check", "--table", "t.jsonl"], {"t.jsonl": ""}, 2,
         f"{E}t.jsonl: is empty; a cost table starts with its header line"),
    case("check-newer-table", ["latency-check", "--table", "t.jsonl"], {"t.jsonl": jsonl({**HEADER, "version": 3})}, 2,
         tline(1, "version 3 is newer than this deepmad reads (1); upgrade deepmad")),
    case("check-fraction-zero", ["latency-check", "--table", "t.jsonl", "--fraction", "0"], {"t.jsonl": TABLE}, 2,
         f"{E}--fraction: must be between 0 and 1, got 0.0"),
    case("check-fraction-above-one", ["latency-check", "--table", "t.jsonl", "--fraction", "1.5"], {"t.jsonl": TABLE}, 2,
         f"{E}--fraction: must be between 0 and 1, got 1.5"),
    case("check-fraction-nan", ["latency-check", "--table", "t.jsonl", "--fraction", "nan"], {"t.jsonl": TABLE}, 2,
         f"{E}--fraction: must be between 0 and 1, got nan"),
    case("check-fraction-word", ["latency-check", "--table", "t.jsonl", "--fraction", "x"], {"t.jsonl": TABLE}, 2,
         usage("latency-check", "argument --fraction: invalid float value: 'x'")),
    case("check-fraction-tiny", ["latency-check", "--table", "t.jsonl", "--held-out", "--fraction", "0.001"], {"t.jsonl": TABLE}, 2,
         f"{E}--fraction: no row could be held out and predicted from the others in 83 rows; raise it"),
    case("check-seed-negative", ["latency-check", "--table", "t.jsonl", "--seed", "-1"], {"t.jsonl": TABLE}, 2,
         usage("latency-check", "argument --seed: expected an integer >= 0, got '-1'")),
    case("check-designs-zero", ["latency-check", "--table", "t.jsonl", "--designs", "0"], {"t.jsonl": TABLE}, 2,
         usage("latency-check", "argument --designs: expected a positive integer, got '0'")),
    case("check-batch-missing", ["latency-check", "--table", "t.jsonl", "--held-out", "--batch", "4"], {"t.jsonl": TABLE}, 2,
         f"{E}--batch: the table has no rows for batch 4; it has 1"),
    case("check-header-only", ["latency-check", "--table", "t.jsonl", "--held-out"], {"t.jsonl": jsonl(HEADER)}, 2,
         f"{E}--table: holds no measured rows, only its header; profile or import a table with rows"),
    case("check-device-unknown", ["latency-check", "--table", "t.jsonl", "--device", "tpu"], {"t.jsonl": TABLE}, 2,
         f"{E}--device: expected cpu or cuda[:N], got 'tpu'"),
    case("check-device-bad-index", ["latency-check", "--table", "t.jsonl", "--device", "cuda:x"], {"t.jsonl": TABLE}, 2,
         f"{E}--device: expected cpu or cuda[:N], got 'cuda:x'"),
    case("check-json-missing-folder", ["latency-check", "--table", "t.jsonl", "--held-out", "--json", "nodir/h.json"], {"t.jsonl": TABLE}, 2,
         f"{E}nodir/h.json: folder 'nodir' does not exist; create it first"),
    case("check-json-is-folder", ["latency-check", "--table", "t.jsonl", "--held-out", "--json", "sub"], {"t.jsonl": TABLE, "sub/": ""}, 2,
         f"{E}sub: is a directory; give a file path"),
    case("check-json-exists", ["latency-check", "--table", "t.jsonl", "--held-out", "--json", "h.json"], {"t.jsonl": TABLE, "h.json": "{}"}, 2,
         f"{E}h.json: exists; pass --force to replace it"),
    # -- import-table ---------------------------------------------------------------------------------
    case("import-no-file", ["import-table"], None, 2, usage("import-table", "the following arguments are required: FILE")),
    case("import-missing-file", ["import-table", "missing.fp16.out"], None, 2, f"{E}missing.fp16.out: no such file"),
    case("import-file-is-folder", ["import-table", "sub", "--dtype", "fp16"], {"sub/": ""}, 2, f"{E}sub: is a directory, not a file"),
    case("import-no-dtype", ["import-table", "conv_data.out"], {"conv_data.out": TINY}, 2,
         f"{E}conv_data.out: cannot tell the data type from the file name; give it (fp32, fp16, int8)"),
    case("import-two-dtypes", ["import-table", "conv_data.fp16.int8.out"], {"conv_data.fp16.int8.out": TINY}, 2,
         f"{E}conv_data.fp16.int8.out: cannot tell the data type from the file name; give it (fp32, fp16, int8)"),
    case("import-bad-dtype", ["import-table", "c.out", "--dtype", "fp64"], {"c.out": TINY}, 2,
         usage("import-table", "argument --dtype: invalid choice: 'fp64' (choose from 'fp32', 'fp16', 'int8')")),
    case("import-empty", *imp(""), 2, f"{E}{CONV}: holds no successful measurement"),
    case("import-only-failed", *imp("{Regular,1,16,32,32,32,3,1,1} -1\n"), 2, f"{E}{CONV}: holds no successful measurement"),
    case("import-expression", *imp("{Regular,1,__import__('os').system('touch x'),32,32,32,3,1,1} 0.25\n"), 2, f"{E}{CONV} line 1: {TN_LINE}"),
    case("import-duplicate", *imp("{Regular,1,16,32,32,32,3,1,1} 0.25\n{Regular,1,16,32,32,32,3,1,1} 0.3\n"), 2,
         f"{E}{CONV} line 2: the same conv is measured twice"),
    case("import-zero-batch", *imp("{Regular,0,16,32,32,32,3,1,1} 0.25\n"), 2, f"{E}{CONV} line 1: sizes must be integers from 1 to 1048576"),
    case("import-depthwise-widths", *imp("{Depthwise,1,16,32,32,32,3,1,1} 0.25\n"), 2,
         f"{E}{CONV} line 1: a Depthwise row needs In_C == Out_C, got 16 and 32"),
    case("import-unknown-conv-type", *imp("{Grouped,1,16,32,32,32,3,1,1} 0.25\n"), 2, f"{E}{CONV} line 1: {TN_LINE}"),
    case("import-nan-latency", *imp("{Regular,1,16,32,32,32,3,1,1} nan\n"), 2, f"{E}{CONV} line 1: {TN_LINE}"),
    case("import-no-latency", *imp("{Regular,1,16,32,32,32,3,1,1}\n"), 2, f"{E}{CONV} line 1: {TN_LINE}"),
    case("import-truncated", *imp("{Regular,1,16,32,32,32,3,1,1} 0.25\n{Regular,1,16,32"), 2, f"{E}{CONV} line 2: {TN_LINE}"),
    case("import-name-space", *imp(TINY, "--name", "bad name"), 2, f"{E}--name: must be letters, digits, '-', '_' or '.', got 'bad name'"),
    case("import-name-path", *imp(TINY, "--name", "../evil"), 2, f"{E}--name: must be letters, digits, '-', '_' or '.', got '../evil'"),
    case("import-name-slash", *imp(TINY, "--name", "x/y"), 2, f"{E}--name: must be letters, digits, '-', '_' or '.', got 'x/y'"),
    case("import-name-long", *imp(TINY, "--name", "a" * 65), 2, f"{E}--name: must be letters, digits, '-', '_' or '.', got '{'a' * 65}'"),
    case("import-out-missing-folder", *imp(TINY, "-o", "nodir/t.jsonl"), 2, f"{E}nodir/t.jsonl: folder 'nodir' does not exist; create it first"),
    case("import-out-is-folder", ["import-table", CONV, "-o", "sub"], {CONV: TINY, "sub/": ""}, 2, f"{E}sub: is a directory; give a file path"),
    case("import-name-empty", *imp(TINY, "--name", ""), 2, f"{E}--name: must be letters, digits, '-', '_' or '.', got ''"),
    case("import-out-empty", *imp(TINY, "-o", ""), 2, f"{E}output: '' is not a file path; give one such as model.py"),
    case("import-device-blank", *imp(TINY, "--device", " "), 2,
         f"{E}--device: must name the device the table was measured on, e.g. 'NVIDIA V100'"),
    case("convert-name-too-long", ["convert", "a.json", "--to", "json", "-o", "n" * 300], arch("x", "x"), 2,
         f"{E}{'n' * 300}: cannot be written (File name too long)"),
    case("score-line-break-in-path", ["score", "a\nb.json"], None, 2, f"{E}a\\nb.json: no such file"),
    # -- whatif ---------------------------------------------------------------------------------------
    case("whatif-no-vary", ["whatif", *SMALL], None, 2, usage("whatif", "the following arguments are required: --vary")),
    case("whatif-unknown-axis", ["whatif", *SMALL, "--vary", "colour=red"], None, 2, usage("whatif",
         "argument --vary: expected NAME=V1,V2,... or NAME=LO:HI:N with NAME one of flops, params, rho, latency, table, block, "
         "resolution, nondecreasing, max_depth_spread, got 'colour=red'")),
    case("whatif-range-reversed", ["whatif", *SMALL, "--vary", "flops=8G:1G:4"], None, 2,
         usage("whatif", "argument --vary: flops: LO:HI:N needs LO <= HI, got '8G:1G:4'")),
    case("whatif-range-no-count", ["whatif", *SMALL, "--vary", "flops=1G:2G:0"], None, 2,
         usage("whatif", "argument --vary: flops: LO:HI:N needs a count N from 2 to 10,000 (1 when LO == HI), got '1G:2G:0'")),
    case("whatif-range-one-point", ["whatif", *SMALL, "--vary", "flops=1G:2G:1"], None, 2,
         usage("whatif", "argument --vary: flops: LO:HI:N needs a count N from 2 to 10,000 (1 when LO == HI), got '1G:2G:1'")),
    case("whatif-range-superscript-count", ["whatif", *SMALL, "--vary", "flops=1G:2G:\u00b2"], None, 2,
         usage("whatif", "argument --vary: flops: LO:HI:N needs a count N from 2 to 10,000 (1 when LO == HI), got '1G:2G:\u00b2'")),
    case("whatif-bad-block", ["whatif", *SMALL, "--vary", "block=resnext"], None, 2, usage("whatif",
         "argument --vary: unknown block type 'resnext'; the types are bottleneck, inverted_residual_se, inverted_residual, basic, plain, large_kernel")),
    case("whatif-axis-twice", ["whatif", *SMALL, "--vary", "flops=1G", "--vary", "flops=2G"], None, 2,
         f"{E}--vary: each axis may be given once; list its values in one --vary NAME=V1,V2,..."),
    case("whatif-workers-and-dask", ["whatif", *SMALL, "--vary", "flops=1G", "--workers", "2", "--dask", "tcp://x:1"], None, 2,
         f"{E}--workers: give --workers N or --dask ADDRESS, not both"),
    case("whatif-latency-front-no-table", ["whatif", *SMALL, "--vary", "flops=1G", "--x", "latency", "--png", "f.png"], None, 2,
         f"{E}--x: latency needs --table (or --vary table=...)"),
    case("whatif-csv-missing-folder", ["whatif", *SMALL, "--vary", "flops=1G", "--csv", "nodir/s.csv"], None, 2,
         f"{E}nodir/s.csv: folder 'nodir' does not exist; create it first"),
    case("whatif-bad-resolution-point", ["whatif", *SMALL, "--vary", "resolution=32,36"], None, 2,
         f"{E}--vary: at resolution=36: resolution: 36 is not divisible by the total stride 8; use a multiple of 8 (e.g. 32)"),
    case("whatif-html-exists", ["whatif", *SMALL, "--vary", "flops=1G", "--html", "r.html"], {"r.html": "mine"}, 2,
         f"{E}r.html: exists; pass --force to replace it"),
    # -- found by this table: each once gave a second line, a wrong field, a solve or a file ----------------
    case("profile-out-missing-folder", ["profile", *SMALL, "-o", "nodir/t.jsonl"], None, 2,
         f"{E}nodir/t.jsonl: folder 'nodir' does not exist; create it first"),
    case("profile-out-is-folder", ["profile", *SMALL, "-o", "sub"], {"sub/": ""}, 2, f"{E}sub: is a directory; give a file path"),
    case("profile-device-unknown", ["profile", *SMALL, "-o", "t.jsonl", "--device", "tpu"], None, 2,
         f"{E}--device: expected cpu or cuda[:N], got 'tpu'"),
    case("profile-even-kernel", ["profile", *SMALL, "-o", "t.jsonl", "--kernels", "2"], None, 2,
         f"{E}--kernels: needs a non-empty set of odd positive kernels, got (2,)"),
    case("profile-resolution-stride", ["profile", *SMALL, "-o", "t.jsonl", "--resolution", "36"], None, 2,
         f"{E}--resolution: 36 is not divisible by the total stride 8; use a multiple of 8 (e.g. 32)"),
    d("json-missing-folder", ["--flops", "2M", "-o", "m.py", "--json", "nodir/r.json"], f"{E}nodir/r.json: folder 'nodir' does not exist; create it first"),
    d("negative-latency-spaced", ["--latency", "-3ms", "--table", "t.jsonl"], usage("design", f"argument --latency: {EXPECT_DURATION}, got '-3ms'"),
      files={"t.jsonl": TABLE}),
    d("batch-without-table", ["--batch", "2"], f"{E}--batch: only used with --table (the batch whose table rows predict latency)"),
    case("generate-exists-verified", ["generate", "a.json", "-o", "m.py"], {**arch("x", "x"), "m.py": "mine\n"}, 2,
         f"{E}m.py: exists with other content; pass --force to replace it"),
]


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_table_is_large_and_its_rows_distinct():
    assert len(CASES) >= 70
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    keys = [json.dumps([c.values[0], c.values[1]], sort_keys=True) for c in CASES]
    assert len(set(keys)) == len(keys), "two rows give the same input"
    commands = {c.values[0][0] for c in CASES if c.values[0] and not c.values[0][0].startswith("-")}
    assert {"score", "generate", "convert", "design", "presets", "tables", "latency", "profile", "latency-check", "import-table",
            "whatif"} <= commands


@pytest.mark.parametrize("argv,files,status,line", CASES)
def test_bad_input_is_one_exact_line_and_leaves_no_file(tmp_path, capsys, monkeypatch, argv, files, status, line):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPMAD_TABLES", "tables")  # relative: under tmp_path, and stable in messages
    for name, text in files.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text(text)
    before = _tree(tmp_path)
    got = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.rstrip("\n") == line
    assert got == status
    assert _tree(tmp_path) == before, "a file was left behind"
