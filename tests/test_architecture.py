"""The architecture model: validation, JSON, TinyNAS import/export and levels."""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import design_resolution, inner_kept, small_arch
from deepmad import BLOCK_TYPES, Architecture, DeepmadError, Head, InputError, Stage, Stem
from deepmad.model import tinynas

BLOCKS = sorted(BLOCK_TYPES)


def stage(**overrides) -> Stage:
    fields = dict(block="bottleneck", channels=16, inner=8, kernel=3, depth=2, stride=2)
    fields.update(overrides)
    return Stage(**fields)


def valid_dict() -> dict:
    """A valid JSON description with three stages (total stride 16, resolution 64)."""
    return {
        "format": "deepmad-architecture",
        "version": 1,
        "name": "test-net",
        "resolution": 64,
        "in_channels": 3,
        "num_classes": 10,
        "stem": {"channels": 8, "kernel": 3, "stride": 2},
        "stages": [
            {"block": "bottleneck", "channels": 16, "inner": 8, "kernel": 3, "depth": 1, "stride": 2},
            {"block": "basic", "channels": 16, "inner": 16, "kernel": 5, "depth": 2, "stride": 1},
            {"block": "inverted_residual_se", "channels": 24, "inner": 48, "kernel": 3, "depth": 2, "stride": 2},
        ],
        "head": {"channels": 64},
    }


@contextlib.contextmanager
def raises_field(field: str):
    """An InputError whose ``.field`` is exactly ``field`` and that says what is wrong."""
    with pytest.raises(InputError) as info:
        yield info
    err = info.value
    assert err.field == field, f"field {err.field!r}, expected {field!r} ({err})"
    assert err.message, "an InputError must say what is wrong"
    assert str(err).startswith(field)


# -- errors -------------------------------------------------------------------


def test_input_error_is_a_value_error_with_exit_status_2():
    err = InputError("stages[2].kernel", "must be odd")
    assert isinstance(err, ValueError) and isinstance(err, DeepmadError)
    assert err.exit_status == 2
    assert str(err) == "stages[2].kernel: must be odd"
    assert err.within("x").field == "x.stages[2].kernel"
    assert InputError("[1]", "m").within("stages").field == "stages[1]"


# -- validation of the parts ----------------------------------------------------

BAD_WIDTHS = [0, -1, 2.5, "8", True, None, 8.0]


@pytest.mark.parametrize("value", BAD_WIDTHS)
@pytest.mark.parametrize("name", ["channels", "inner", "depth"])
def test_stage_rejects_bad_positive_integers(name, value):
    with raises_field(name):
        stage(**{name: value})


@pytest.mark.parametrize("value", BAD_WIDTHS)
def test_stem_and_head_reject_bad_widths(value):
    with raises_field("channels"):
        Stem(channels=value)
    with raises_field("channels"):
        Head(channels=value)


@pytest.mark.parametrize("value", [2, 4, 0, -3, 2.5, "3", True])
def test_kernels_must_be_odd_positive_integers(value):
    with raises_field("kernel"):
        stage(kernel=value)
    with raises_field("kernel"):
        Stem(channels=8, kernel=value)


@pytest.mark.parametrize("value", [0, 3, 4, -1, -2, True, "2", None])
def test_strides_must_be_1_or_2(value):
    with raises_field("stride"):
        stage(stride=value)
    with raises_field("stride"):
        Stem(channels=8, stride=value)


@pytest.mark.parametrize("value", [1.0, 2.0])
def test_float_strides_are_rejected(value):
    with raises_field("stride"):
        stage(stride=value)


@pytest.mark.parametrize("value", ["foo", "Bottleneck", "SuperResK1KXK1", "", 3, None])
def test_unknown_block_type(value):
    with raises_field("block"):
        stage(block=value)


def test_every_block_type_is_accepted():
    for block in BLOCKS:
        inner = 8 if BLOCK_TYPES[block].has_inner else 16
        assert stage(block=block, inner=inner).block_type.name == block


def test_a_block_type_without_inner_width_takes_its_channels():
    with raises_field("inner"):
        stage(block="plain", channels=16, inner=8)
    data = valid_dict()
    for s in data["stages"]:
        s["block"] = "plain"
        del s["inner"]
    arch = Architecture.from_dict(data)
    assert all(s.inner == s.channels for s in arch.stages)
    assert Architecture.from_json(arch.to_json()) == arch


@pytest.mark.parametrize("resolution", [225, 8, 48, 100])
def test_resolution_must_be_a_multiple_of_the_total_stride(resolution):
    stages = tuple(stage(stride=s) for s in (2, 2, 2, 1, 2))
    assert Architecture(Stem(8), stages, resolution=224).total_stride == 32
    with raises_field("resolution"):
        Architecture(Stem(8), stages, resolution=resolution)


@pytest.mark.parametrize("name", ["resolution", "in_channels", "num_classes"])
@pytest.mark.parametrize("value", [0, -32, 32.0, "32", True])
def test_architecture_rejects_bad_integers(name, value):
    with raises_field(name):
        Architecture(Stem(8), (stage(),), **{"resolution": 64, name: value})


def test_empty_stage_list():
    with raises_field("stages"):
        Architecture(Stem(8), ())
    with raises_field("stages"):
        Architecture(Stem(8), [])


def test_stage_of_the_wrong_type():
    with raises_field("stages[1]"):
        Architecture(Stem(8), (stage(), {"block": "basic"}), resolution=64)


@pytest.mark.parametrize("name", ["a b", "x" * 65, "ü", "a/b", 3])
def test_bad_names(name):
    with raises_field("name"):
        Architecture(Stem(8), (stage(),), resolution=64, name=name)


def test_name_is_not_part_of_equality():
    a = Architecture(Stem(8), (stage(),), resolution=64, name="a")
    b = Architecture(Stem(8), (stage(),), resolution=64, name="b")
    assert a == b and a.name != b.name


def test_architecture_is_immutable():
    arch = small_arch("basic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.resolution = 32  # type: ignore[misc]
    assert isinstance(arch.stages, tuple)
    assert isinstance(Architecture(Stem(8), [stage()], resolution=64).stages, tuple)


# -- from_dict: field paths --------------------------------------------------


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()

FROM_DICT_CASES = [
    # (path into the dict, new value, expected field)
    (("stages", 1, "kernel"), 4, "stages[1].kernel"),
    (("stages", 0, "kernel"), 2.5, "stages[0].kernel"),
    (("stages", 2, "channels"), 0, "stages[2].channels"),
    (("stages", 2, "channels"), "24", "stages[2].channels"),
    (("stages", 2, "inner"), True, "stages[2].inner"),
    (("stages", 1, "depth"), 0, "stages[1].depth"),
    (("stages", 0, "stride"), 3, "stages[0].stride"),
    (("stages", 1, "block"), "resnet", "stages[1].block"),
    (("stem", "channels"), -8, "stem.channels"),
    (("stem", "channels"), 2.5, "stem.channels"),
    (("stem", "kernel"), 4, "stem.kernel"),
    (("stem", "stride"), 4, "stem.stride"),
    (("head", "channels"), 0, "head.channels"),
    (("resolution",), 65, "resolution"),
    (("resolution",), "64", "resolution"),
    (("num_classes",), 0, "num_classes"),
    (("in_channels",), 0, "in_channels"),
    (("name",), "bad name!", "name"),
    (("stages",), [], "stages"),
    (("stages",), {"0": {}}, "stages"),
    (("stages", 1), ["basic"], "stages[1]"),
    (("stem",), 8, "stem"),
    (("head",), 64, "head"),
    # unknown fields
    (("colour",), "red", "colour"),
    (("stem", "padding"), 1, "stem.padding"),
    (("stages", 2, "expansion"), 4, "stages[2].expansion"),
    (("head", "kernel"), 1, "head.kernel"),
    # missing fields
    (("stem",), _DELETE, "stem"),
    (("stages",), _DELETE, "stages"),
    (("stem", "channels"), _DELETE, "stem.channels"),
    (("stages", 1, "depth"), _DELETE, "stages[1].depth"),
    (("stages", 0, "block"), _DELETE, "stages[0].block"),
    (("head", "channels"), _DELETE, "head.channels"),
    # version and format
    (("version",), _DELETE, "version"),
    (("version",), 2, "version"),
    (("version",), "1", "version"),
    (("version",), None, "version"),
    (("format",), "tinynas", "format"),
]


@pytest.mark.parametrize("path, value, field", FROM_DICT_CASES, ids=[c[2] + "=" + repr(c[1])[:12] for c in FROM_DICT_CASES])
def test_from_dict_names_the_field(path, value, field):
    data = _set(valid_dict(), path, value)
    with raises_field(field):
        Architecture.from_dict(data)
    # The same goes through JSON text.
    with raises_field(field):
        Architecture.from_json(json.dumps(data))


def test_from_dict_unknown_field_message_lists_the_fields():
    with pytest.raises(InputError) as info:
        Architecture.from_dict(_set(valid_dict(), ("stages", 0, "kernal"), 3))
    assert "kernel" in info.value.message


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_must_be_the_integer_1(version):
    with raises_field("version"):
        Architecture.from_dict(_set(valid_dict(), ("version",), version))


def test_from_dict_defaults():
    data = valid_dict()
    for key in ("format", "name", "resolution", "in_channels", "num_classes", "head"):
        del data[key]
    arch = Architecture.from_dict(data)
    assert (arch.resolution, arch.in_channels, arch.num_classes, arch.head, arch.name) == (224, 3, 1000, None, "")
    stem_only = _set(valid_dict(), ("stem",), {"channels": 8})
    assert Architecture.from_dict(stem_only).stem == Stem(8, 3, 2)


@pytest.mark.parametrize("text", ["", "{", '{"version": 1,}', "not json", "[1, 2", "{'version': 1}", "\x00"])
def test_malformed_json_is_an_input_error(text):
    with raises_field("architecture"):
        Architecture.from_json(text)


@pytest.mark.parametrize("text", ["[]", "1", '"x"', "null"])
def test_json_that_is_not_an_object(text):
    with raises_field("architecture"):
        Architecture.from_json(text)


def test_load_reports_the_path(tmp_path):
    missing = tmp_path / "nope.json"
    with raises_field(str(missing)):
        Architecture.load(missing)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    with raises_field(str(bad)):
        Architecture.load(bad)
    with raises_field(str(tmp_path)):
        Architecture.load(tmp_path)
    good = tmp_path / "good.json"
    arch = small_arch("basic", name="good")
    good.write_text(arch.to_json(), encoding="utf-8")
    assert Architecture.load(good) == arch


# -- JSON round trip ------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_json_round_trip(block):
    for head in (True, False):
        arch = small_arch(block, head=head, name=f"n-{block}")
        back = Architecture.from_json(arch.to_json())
        assert back == arch
        assert back.name == arch.name
        assert back.to_dict() == arch.to_dict()
        assert arch.to_json().endswith("\n")


def test_to_dict_has_format_and_version():
    d = small_arch("basic").to_dict()
    assert d["format"] == "deepmad-architecture"
    assert d["version"] == 1
    assert json.loads(json.dumps(d)) == d
    assert "name" not in d  # empty name is left out
    assert Architecture.from_dict(valid_dict()).to_dict() == valid_dict()


def test_published_json_round_trip(published_file):
    arch = tinynas.load(published_file, resolution=design_resolution(published_file))
    assert Architecture.from_json(arch.to_json()) == arch


# -- TinyNAS ----------------------------------------------------------------------


def _published_layers(path) -> tuple[dict, list[dict]]:
    data = ast.literal_eval(path.read_text(encoding="utf-8"))
    return data, data["best_structures"][0]


def test_published_loads(published_file):
    r = design_resolution(published_file)
    arch = tinynas.load(published_file, resolution=r)
    _, layers = _published_layers(published_file)
    assert arch.resolution == r
    assert arch.in_channels == 3 and arch.num_classes == 1000
    assert arch.stem == Stem(channels=layers[0]["out"], kernel=3, stride=2)
    # Every published model has five stages and a total stride of 32 (spec section 1).
    assert len(arch.stages) == 5
    assert arch.total_stride == 32
    assert (arch.head is not None) == (layers[-1]["class"] == "ConvKXBNRELU")
    assert [lv.reduction for lv in arch.levels()] == [2, 4, 8, 16, 32]


def test_published_export_is_lossless(published_file):
    r = design_resolution(published_file)
    arch = tinynas.load(published_file, resolution=r)
    data, original = _published_layers(published_file)

    text = tinynas.dumps(arch)
    assert tinynas.parse(text, resolution=r) == arch
    assert tinynas.dumps(tinynas.parse(text, resolution=r)) == text

    exported = tinynas.to_layers(arch)
    assert len(exported) == len(original)
    for orig, new in zip(original, exported):
        if "inner_class" not in orig:
            if "inner_class" in new:
                assert new["inner_class"] == BLOCK_TYPES[_block_of(new["class"])].tinynas_inner_class
            new = {k: v for k, v in new.items() if k != "inner_class"}
        assert orig == new
    dumped = ast.literal_eval(text)
    assert dumped.keys() == data.keys()
    assert dumped["space_arch"] == data["space_arch"]
    assert dumped["best_structures"] == [exported]


def _block_of(tinynas_class: str) -> str:
    return next(name for name, bt in BLOCK_TYPES.items() if bt.tinynas_class == tinynas_class)


def test_published_inner_class_is_optional(published_file):
    """Dropping (or adding) inner_class does not change what a file means."""
    r = design_resolution(published_file)
    arch = tinynas.load(published_file, resolution=r)
    layers = tinynas.to_layers(arch)
    bare = [{k: v for k, v in layer.items() if k != "inner_class"} for layer in layers]
    assert tinynas.parse(repr(bare), resolution=r) == arch
    assert tinynas.parse(repr({"best_structures": [bare]}), resolution=r) == arch


def test_parse_accepts_the_bare_list_and_the_wrapped_form():
    arch = small_arch("inverted_residual", head=True, num_classes=1000)
    layers = tinynas.to_layers(arch)
    assert tinynas.parse(repr(layers), resolution=64) == arch
    assert tinynas.parse(repr({"best_structures": [layers], "space_arch": "CnnNet"}), resolution=64) == arch


def _layers() -> list[dict]:
    """Stem, two stages, head."""
    return [
        {"class": "ConvKXBNRELU", "in": 3, "k": 3, "out": 16, "s": 2},
        {"L": 1, "btn": 8, "class": "SuperResK1KXK1", "in": 16, "k": 3, "out": 32, "s": 2},
        {"L": 2, "btn": 64, "class": "SuperResK1DWSEK1", "in": 32, "inner_class": "ResK1DWSEK1", "k": 5, "out": 48, "s": 2},
        {"class": "ConvKXBNRELU", "in": 48, "k": 1, "out": 128, "s": 1},
    ]


def test_small_tinynas_text_parses():
    arch = tinynas.parse(repr({"best_structures": [_layers()]}), resolution=32)
    assert arch.head == Head(128)
    assert [s.block for s in arch.stages] == ["bottleneck", "inverted_residual_se"]


def _mutated(index: int, key: str, value) -> str:
    layers = _layers()
    if value is _DELETE:
        del layers[index][key]
    else:
        layers[index][key] = value
    return repr({"best_structures": [layers], "space_arch": "CnnNet"})


MALFORMED_LAYERS = [
    # (layer, key, value, expected field)
    (1, "class", "SuperResK3K3", "tinynas: layer 1.class"),
    (1, "class", None, "tinynas: layer 1.class"),
    (2, "inner_class", "ResK1KXK1", "tinynas: layer 2.inner_class"),
    (2, "in", 16, "tinynas: layer 2.in"),
    (1, "in", 3, "tinynas: layer 1.in"),
    (1, "btn", _DELETE, "tinynas: layer 1.btn"),
    (1, "L", _DELETE, "tinynas: layer 1.L"),
    (2, "k", _DELETE, "tinynas: layer 2.k"),
    (2, "out", _DELETE, "tinynas: layer 2.out"),
    (2, "in", _DELETE, "tinynas: layer 2.in"),
    (0, "out", _DELETE, "tinynas: layer 0.out"),
    (0, "k", _DELETE, "tinynas: layer 0.k"),
    (0, "in", _DELETE, "tinynas: layer 0.in"),
    (0, "class", "SuperResK1KXK1", "tinynas: layer 0.class"),
    (1, "k", 4, "tinynas: layer 1.kernel"),
    (1, "L", 0, "tinynas: layer 1.depth"),
    (2, "s", 3, "tinynas: layer 2.stride"),
    (0, "out", 0, "tinynas: layer 0.channels"),
    (3, "k", 3, "tinynas: layer 3"),
    (3, "s", 2, "tinynas: layer 3"),
    (3, "k", _DELETE, "tinynas: layer 3.k"),
    (3, "out", 0, "tinynas: layer 3.channels"),
]


def _case_id(case) -> str:
    index, key, value, _ = case.values if hasattr(case, "values") else case
    return f"{index}.{key}={'deleted' if value is _DELETE else repr(value)}"


@pytest.mark.parametrize("index, key, value, field", MALFORMED_LAYERS, ids=[_case_id(c) for c in MALFORMED_LAYERS])
def test_malformed_layers_name_the_field(index, key, value, field):
    with raises_field(field):
        tinynas.parse(_mutated(index, key, value), resolution=32)


@pytest.mark.parametrize("index, key", [(0, "in"), (0, "k"), (0, "out"), (1, "L"), (1, "btn"), (1, "in"),
                                        (2, "k"), (2, "out"), (3, "k"), (3, "out")])
def test_missing_keys_are_input_errors(index, key):
    """Whatever the exact path, the error is an InputError naming the layer and the key."""
    with pytest.raises(InputError) as info:
        tinynas.parse(_mutated(index, key, _DELETE), resolution=32)
    assert info.value.field.startswith(f"tinynas: layer {index}")
    assert info.value.field.endswith(f".{key}")
    assert "missing" in info.value.message


@pytest.mark.parametrize("value", [999, _DELETE], ids=["999", "deleted"])
def test_head_in_must_chain(value):
    with pytest.raises(InputError):
        tinynas.parse(_mutated(3, "in", value), resolution=32)


@pytest.mark.parametrize(
    "text, field",
    [
        ("", "tinynas"),
        ("[]", "tinynas"),
        ("{}", "tinynas: best_structures"),
        ("{'best_structures': []}", "tinynas: best_structures"),
        ("{'best_structures': [[], []]}", "tinynas: best_structures"),
        ("{'best_structures': [{}]}", "tinynas: best_structures"),
        ("{'best_structures': [[]]}", "tinynas"),
        ("[1, 2]", "tinynas: layer 0"),
        ("42", "tinynas"),
        ("[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 8, 's': 2}]", "tinynas: stages"),
        ("[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 8, 's': 2}, "
         "{'class': 'ConvKXBNRELU', 'in': 8, 'k': 1, 'out': 8, 's': 1}]", "tinynas: layer 1"),
    ],
)
def test_malformed_structures(text, field):
    with raises_field(field):
        tinynas.parse(text, resolution=32)


def test_truncated_text(published_file):
    text = published_file.read_text(encoding="utf-8").rstrip()
    assert tinynas.parse(text, resolution=design_resolution(published_file))
    for cut in (len(text) // 2, len(text) - 1, len(text) - 10, 1):
        with raises_field("tinynas"):
            tinynas.parse(text[:cut], resolution=224)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(_mutated(2, "in", 16), encoding="utf-8")
    with raises_field(f"{path}: layer 2.in"):
        tinynas.load(path, resolution=32)
    with raises_field(str(tmp_path / "missing.txt")):
        tinynas.load(tmp_path / "missing.txt", resolution=32)


def test_resolution_is_validated():
    text = repr(_layers())
    with raises_field("tinynas: resolution"):
        tinynas.parse(text, resolution=33)
    with raises_field("tinynas: resolution"):
        tinynas.parse(text, resolution=0)


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {marker}')",
        "{{'best_structures': [[{{'class': 'ConvKXBNRELU', 'in': __import__('os').system('touch {marker}'), "
        "'k': 3, 'out': 8, 's': 2}}]]}}",
        "[open({marker!r}, 'w')]",
        "(lambda: __import__('os').system('touch {marker}'))()",
        "[x for x in [__import__('os').system('touch {marker}')]]",
    ],
)
def test_code_is_refused_and_not_run(template, tmp_path):
    marker = str(tmp_path / "ran")
    with raises_field("tinynas"):
        tinynas.parse(template.format(marker=marker), resolution=32)
    assert not (tmp_path / "ran").exists()


def test_oversized_text_is_refused():
    with raises_field("tinynas"):
        tinynas.parse(" " * ((1 << 20) + 1), resolution=32)


def test_deeply_nested_text_is_an_input_error():
    with raises_field("tinynas"):
        tinynas.parse("[" * 100_000 + "]" * 100_000, resolution=32)


# -- property test: random architectures round-trip exactly ---------------------


@st.composite
def architectures(draw):
    n = draw(st.integers(1, 5))
    stem = Stem(
        channels=draw(st.integers(1, 64)),
        kernel=draw(st.sampled_from([1, 3, 5, 7])),
        stride=draw(st.sampled_from([1, 2])),
    )
    stages = tuple(
        inner_kept(Stage,
            block=draw(st.sampled_from(BLOCKS)),
            channels=draw(st.integers(1, 64)),
            inner=draw(st.integers(1, 256)),
            kernel=draw(st.sampled_from([1, 3, 5, 7])),
            depth=draw(st.integers(1, 6)),
            stride=draw(st.sampled_from([1, 2])),
        )
        for _ in range(n)
    )
    head = draw(st.none() | st.builds(Head, st.integers(1, 256)))
    total = stem.stride * math.prod(s.stride for s in stages)
    return Architecture(
        stem=stem,
        stages=stages,
        head=head,
        resolution=total * draw(st.integers(1, 16)),
        in_channels=draw(st.integers(1, 4)),
        num_classes=draw(st.integers(1, 2000)),
        name=draw(st.from_regex(r"[A-Za-z0-9_.\-]{0,64}", fullmatch=True)),
    )


@settings(max_examples=150, deadline=None)
@given(arch=architectures())
def test_random_architectures_round_trip(arch):
    back = Architecture.from_json(arch.to_json())
    assert back == arch and back.name == arch.name
    assert back.to_json() == arch.to_json()

    # TinyNAS holds neither the resolution, nor the classifier, nor the name, nor the families it lacks.
    if all(s.block_type.tinynas_class for s in arch.stages):
        text = tinynas.dumps(arch)
        parsed = tinynas.parse(text, resolution=arch.resolution)
        assert parsed == dataclasses.replace(arch, num_classes=1000)
        assert tinynas.dumps(parsed) == text
        assert tinynas.to_layers(parsed) == ast.literal_eval(text)["best_structures"][0]
    else:
        with pytest.raises(InputError, match="TinyNAS has no"):
            tinynas.dumps(arch)

    # Levels: a partition of the stages by stride-2 boundaries.
    levels = arch.levels()
    assert levels[-1].last_stage == len(arch.stages) - 1
    assert levels[-1].reduction == arch.total_stride
    assert levels[-1].channels == arch.stages[-1].channels
    assert len(levels) == 1 + sum(s.stride == 2 for s in arch.stages)
    assert all(a.last_stage < b.last_stage for a, b in zip(levels, levels[1:]))
    assert all(2 * a.reduction == b.reduction for a, b in zip(levels, levels[1:]))


# -- levels -----------------------------------------------------------------------


def _arch(strides, stem_stride=2, widths=(8, 16, 24, 32, 40)):
    stages = tuple(stage(channels=c, stride=s) for c, s in zip(widths, strides))
    stem = Stem(channels=4, stride=stem_stride)
    return Architecture(stem=stem, stages=stages, resolution=stem_stride * math.prod(strides) * 2)


def test_levels_stride_one_stage_merges_into_the_previous_level():
    arch = _arch((2, 2, 2, 1, 2))
    levels = arch.levels()
    assert len(levels) == 5
    assert [lv.reduction for lv in levels] == [2, 4, 8, 16, 32]
    assert [lv.last_stage for lv in levels] == [-1, 0, 1, 3, 4]
    assert [lv.channels for lv in levels] == [4, 8, 16, 32, 40]


def test_levels_first_stage_merges_with_the_stem():
    arch = _arch((1, 2, 2, 2, 2))
    levels = arch.levels()
    assert len(levels) == 5
    assert [lv.reduction for lv in levels] == [2, 4, 8, 16, 32]
    assert [lv.last_stage for lv in levels] == [0, 1, 2, 3, 4]
    assert [lv.channels for lv in levels] == [8, 16, 24, 32, 40]


def test_levels_without_any_stride():
    levels = _arch((1, 1), stem_stride=1).levels()
    assert [(lv.last_stage, lv.reduction, lv.channels) for lv in levels] == [(1, 1, 16)]


def test_levels_stride_one_stem():
    levels = _arch((2, 1, 2), stem_stride=1).levels()
    assert [(lv.last_stage, lv.reduction, lv.channels) for lv in levels] == [(-1, 1, 4), (1, 2, 16), (2, 4, 24)]


def test_levels_ignore_the_head():
    arch = dataclasses.replace(_arch((2, 2)), head=Head(100))
    assert arch.levels()[-1].channels == 16
    assert arch.out_channels == 100
