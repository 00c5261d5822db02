"""Fuzzing of every loader and of the command line: random and mutated inputs end in clean errors.

Each property starts from valid inputs (the example architecture, random valid
architectures, the published TinyNAS structures, a small cost table, TinyNAS
op-profiler rows) and mutates them: keys deleted, values replaced by values of
other types, huge numbers, NaN and infinities, strings holding code, nesting,
truncation, inserted garbage and flipped bytes. A loader may then succeed (and
what it read must survive a round trip) or raise its documented error
(:class:`~deepmad.errors.InputError`, :class:`~hwmodels.table.TableError`),
with a one-line message; anything else is a bug. TinyNAS text holding code must
never run it: every snippet would create a marker file if it were evaluated.

All runs are derandomized (deterministic in CI) and write only under ``tmp_path``. For a deeper, random
search set ``DEEPMAD_FUZZ_SCALE=N``: N times the examples, with a fresh random seed each run.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import deepmad.cli as cli
from conftest import PUBLISHED, analytic_ms, inner_kept, small_arch
from deepmad.errors import InputError
from deepmad.hardware.latency import architecture_units, load_model
from deepmad.model import tinynas
from deepmad.model.architecture import MAX, Architecture, Head, Stage, Stem
from deepmad.model.blocks import BLOCK_TYPES
from deepmad.problem.presets import PRESETS
from deepmad.units import parse_amount, parse_duration_ms, parse_range
from hwmodels import table as cost_table
from hwmodels.table import Calibration, CostTable, Row, TableError, TableMeta
from hwmodels.tinynas import import_tinynas

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_TEXT = (ROOT / "examples" / "bottleneck-example.json").read_text()
PUBLISHED_TEXTS = {p.name: p.read_text() for p in sorted(PUBLISHED.glob("*.txt"))}


_SCALE = int(os.environ.get("DEEPMAD_FUZZ_SCALE", "1") or 1)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples * _SCALE,
        deadline=None,
        derandomize=_SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def test_the_published_structures_are_there():
    assert len(PUBLISHED_TEXTS) >= 10, f"published TinyNAS structures not found at {PUBLISHED}"


def one_line(message: str) -> None:
    """What the CLI prints must stay on one line: no line breaks of any kind in a message."""
    assert len(message.splitlines()) <= 1, f"a message of several lines: {message!r}"


def clean(fn, *args, errors: tuple[type[BaseException], ...] = (InputError,), **kwargs):
    """``fn(*args, **kwargs)``, or ``None`` where it raised one of ``errors`` (whose message is one line).

    Any other exception propagates and fails the property."""
    try:
        return fn(*args, **kwargs)
    except errors as exc:
        one_line(str(exc))
        return None


# -- random values and mutations -----------------------------------------------

MARKER_NAME = "FUZZ_MARKER"
#: Python expressions that create the file ``{m}`` when evaluated (see the control test below).
CODE_TEMPLATES = (
    "__import__('os').system('touch {m}')",
    "__import__('os').system('touch {m}') or 3",
    "open('{m}', 'w')",
    "__builtins__['open']('{m}', 'w') if isinstance(__builtins__, dict) else __builtins__.open('{m}', 'w')",
    "(lambda: open('{m}', 'w'))()",
    "(lambda p=open: p('{m}', 'w'))()",
    "[open('{m}', 'w') for _ in [1]]",
    "{{k: open('{m}', 'w') for k in [1]}}",
    "{{open('{m}', 'w').name for _ in (1,)}}",
    "f\"{{open('{m}', 'w')}}\"",
    "(x := open('{m}', 'w'))",
    "eval(\"open('{m}', 'w')\")",
    "exec(\"open('{m}', 'w')\")",
    "__import__('pathlib').Path('{m}').touch()",
    "3 if __import__('os').system('touch {m}') else 3",
    "[*map(open, ['{m}'], ['w'])]",
    "globals()['__builtins__'] and __import__('pathlib').Path('{m}').write_text('')",
    "getattr(__import__('os'), 'system')('touch {m}')",
    "().__class__.__base__.__subclasses__() and open('{m}', 'w')",
    "\uff45\uff56\uff41\uff4c(\"open('{m}', 'w')\")",  # fullwidth "eval": NFKC-normalised to eval
    "-open('{m}', 'w').fileno()",
    "3 + open('{m}', 'w').fileno()",
    "(open('{m}', 'w'), 3)[1]",
    "{{**{{1: open('{m}', 'w')}}}}",
)
#: Statements (``exec`` territory), for text that is not an expression at all.
CODE_STATEMENTS = (
    "import os; os.system('touch {m}')",
    "import pathlib\npathlib.Path('{m}').touch()",
    "open('{m}', 'w').close()\n",
    "def f():\n    open('{m}', 'w')\nf()\n",
    "for _ in [1]: open('{m}', 'w')",
)


def code_snippets(marker: Path) -> list[str]:
    return [t.format(m=marker) for t in CODE_TEMPLATES]


#: Strings that hold code (for JSON and table fields: never evaluated, but must not break anything).
CODE_STRINGS = tuple(t.format(m="/nonexistent/" + MARKER_NAME) for t in CODE_TEMPLATES[:6]) + (
    "${HOME}", "$(touch x)", "`id`", "%s%s%n", "{0.__class__}", "\x1b[2J", "a\nb", "a\rb", "\u2028", "\x85", "\x00",
    "bottleneck", "basic", "inverted_residual_se", "deepmad-architecture", "deepmad-cost-table", "conv", "relu",
    "ConvKXBNRELU", "SuperResK1KXK1", "",
)
EDGE_INTS = (0, 1, 2, 3, -1, -2, 7, 31, 32, 33, 1000, 1001, 1 << 16, (1 << 16) + 1, 1 << 20, (1 << 20) + 1,
             1 << 31, 1 << 63, 1 << 64, 10**20, 10**400, -(10**400))
EDGE_FLOATS = (0.0, -0.0, 0.5, 1.0, 2.0, 3.0, -1.0, 1e-320, 1e308, math.inf, -math.inf, math.nan)
ODD_KEYS = ("a\nb", "colour\r", "\u2028", "x\x85y", "\x1b[31mred", "__class__", "", " ", "stem ", "Kernel", "1")
KEYS = ("format", "version", "name", "resolution", "in_channels", "num_classes", "stem", "stages", "head", "block",
        "channels", "inner", "kernel", "depth", "stride", "class", "in", "out", "k", "s", "L", "btn", "inner_class",
        "best_structures", "op", "batch", "c_in", "c_out", "size", "fused_add", "act", "ms", "spread", "repeats",
        "meta", "device", "backend", "calibration", "scale", "channel_block", "threads", *ODD_KEYS)

#: Numbers at the ends of what JSON and floats hold: the first values a number field gets.
EXTREMES = (10**400, -(10**400), 10**20, 1 << 64, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, -0.0)
json_scalars = st.one_of(
    st.sampled_from(EXTREMES),
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_FLOATS),
    st.sampled_from(CODE_STRINGS),
    st.none(),
    st.booleans(),
    st.integers(-100, 2000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
)
json_keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(ODD_KEYS), st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=12,
)
# Python literals go further than JSON: tuples, sets, bytes, complex numbers, non-string keys.
literal_scalars = st.one_of(
    json_scalars,
    st.binary(max_size=8),
    st.complex_numbers(max_magnitude=1e6),
    st.frozensets(st.integers(0, 9), max_size=3).map(set),
)
literal_keys = st.one_of(json_keys, st.integers(-2, 9), st.tuples(st.integers(0, 3)), st.booleans(), st.none())
literal_values = st.recursive(
    literal_scalars,
    lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(literal_keys, inner, max_size=4)),
    max_leaves=12,
)

#: Text that breaks parsers: tokens JSON and Python read specially, huge and deep constructs, odd characters.
NASTY_TEXT = (
    "NaN", "Infinity", "-Infinity", "nan", "inf", "1e999", "-1e999", "1e-999", "9" * 5000, "-" + "9" * 5000,
    "0" * 4000 + "1", "1" + "0" * 400, "[" * 100_000, "{" * 50_000, "(" * 100_000, "-" * 100_000 + "1",
    "[" * 50 + "]" * 50, "\x00", "\ufeff", "\ufffd",
    "\\ud800", "\"\\ud800\"", "\"\\u0000\"", "'", "\"", "\\", ",", ":", "}", "]", ")", "True", "None", "null",
    "true", "1_000", "0x10", "0o7", "0b1", "1j", "...", "#", "\n", "\r\n", "\t", " ", "\u2028", "\x85",
    '"a": 1', "'a': 1", "{}", "[]", "set()", "()", "b''", "1.", ".5", "+1", "--1", "1e5", "1E+2",
)


def _containers(doc, path=()):
    """Every path to a value in ``doc`` (dicts and lists are entered; tuples and sets are values)."""
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _containers(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _containers(value, (*path, i))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


MUTATIONS = ("delete", "replace", "replace", "replace", "retype", "nudge", "add", "add", "rename", "rename", "wrap", "duplicate")


@st.composite
def mutated(draw, base, values, *, max_mutations: int = 4):
    """``base`` (a JSON-like document) with 1 to ``max_mutations`` random structural changes."""
    doc = copy.deepcopy(draw(base))
    for _ in range(draw(st.sampled_from(tuple(n for n in (1, 1, 1, 1, 2, 2, 3, 4, 6) if n <= max_mutations)))):
        path = draw(st.sampled_from(list(_containers(doc))))
        kind = draw(st.sampled_from(MUTATIONS))
        value = _get(doc, path)
        if kind == "delete" or kind == "duplicate":
            if not path:
                continue
            parent = _get(doc, path[:-1])
            if kind == "delete":
                del parent[path[-1]]
            elif isinstance(parent, list):
                parent.insert(path[-1], copy.deepcopy(value))
            continue
        if kind == "replace":
            new = draw(values)
        elif kind == "retype":  # the same value as another type: 3 -> 3.0, "3", True, [3]
            if isinstance(value, bool):
                choices = [int(value), str(value).lower(), [value]]
            elif isinstance(value, int):
                choices = [str(value), bool(value), -value, [value]] + ([float(value), value + 0.5] if abs(value) < 1e300 else [])
            elif isinstance(value, float):
                choices = [str(value), -value, [value]] + ([int(value)] if math.isfinite(value) else [])
            else:
                choices = [str(value), [value], {"value": value}, None]
            new = draw(st.sampled_from(choices))
        elif kind == "nudge":
            if isinstance(value, int) and not isinstance(value, bool):
                new = value + draw(st.sampled_from([-value, -1, 1, 2, 10**6, 10**30, value * 1000]))
            elif isinstance(value, str):
                new = draw(st.sampled_from([value + "x", value[:-1], value.upper(), value + "\n", " " + value, value * 3]))
            else:
                new = draw(values)
        elif kind == "rename":
            if path and isinstance(_get(doc, path[:-1]), dict):
                parent = _get(doc, path[:-1])
                parent[draw(json_keys)] = parent.pop(path[-1])
            continue
        elif kind == "add":
            if isinstance(value, dict):
                value[draw(json_keys)] = draw(values)
            elif isinstance(value, list):
                value.insert(draw(st.integers(0, len(value))), draw(values))
            continue
        else:  # wrap
            new = draw(st.sampled_from([[value], {"stem": value}, [value, value], [[value]]]))
        if path:
            _get(doc, path[:-1])[path[-1]] = new
        else:
            doc = new
    return doc


@st.composite
def mutated_text(draw, base, *, max_edits: int = 3, extra=st.nothing()):
    """``base`` (text) with 1 to ``max_edits`` character-level edits: truncation, insertion of nasty tokens,
    random characters or ``extra``, deletion and duplication of spans, replacement of a number."""
    text = draw(base)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(("truncate", "insert", "insert", "delete", "duplicate", "number")))
        at = draw(st.integers(0, len(text)))
        if kind == "truncate":
            text = text[:at]
        elif kind == "insert":
            piece = draw(st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=6), extra))
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "duplicate":
            text = text[:at] + text[at:at + draw(st.integers(1, 40))] + text[at:]
        else:
            numbers = list(re.finditer(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", text))
            if numbers:
                m = draw(st.sampled_from(numbers))
                piece = draw(st.one_of(st.sampled_from(NASTY_TEXT), extra))
                text = text[:m.start()] + piece + text[m.end():]
    return text


@st.composite
def flipped_bytes(draw, data: bytes, *, max_flips: int = 4) -> bytes:
    """``data`` with a few bytes xor-ed with random values, and maybe truncated at a random byte."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_flips))):
        if out:
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


# -- valid architectures --------------------------------------------------------------

odd_kernels = st.integers(0, 15).map(lambda k: 2 * k + 1)
widths = st.one_of(st.integers(1, 512), st.integers(1, MAX["channels"]))
names = st.from_regex(r"[A-Za-z0-9_.\-]{0,64}", fullmatch=True)


@st.composite
def architectures(draw, *, max_stages: int = 6, blocks: tuple[str, ...] = tuple(sorted(BLOCK_TYPES))) -> Architecture:
    stem = Stem(channels=draw(widths), kernel=draw(odd_kernels), stride=draw(st.sampled_from((1, 2))))
    stages = draw(st.lists(
        st.builds(inner_kept, st.just(Stage), block=st.sampled_from(blocks), channels=widths, inner=widths, kernel=odd_kernels,
                  depth=st.one_of(st.integers(1, 20), st.integers(1, MAX["depth"])), stride=st.sampled_from((1, 2))),
        min_size=1, max_size=max_stages,
    ))
    head = draw(st.none() | st.builds(Head, channels=widths))
    total = stem.stride * math.prod(s.stride for s in stages)
    resolution = total * draw(st.integers(1, MAX["resolution"] // total))
    return Architecture(
        stem=stem, stages=tuple(stages), head=head, resolution=resolution,
        in_channels=draw(st.integers(1, MAX["in_channels"])), num_classes=draw(st.integers(1, MAX["num_classes"])),
        name=draw(names),
    )


def assert_round_trips(arch: Architecture) -> None:
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.name == arch.name
    assert again.to_dict() == arch.to_dict()


TINYNAS_BLOCKS = tuple(sorted(name for name, bt in BLOCK_TYPES.items() if bt.tinynas_class))


@_settings(100)
@given(architectures())
def test_valid_architectures_round_trip_through_json_and_tinynas(arch):
    assert_round_trips(arch)
    plain = dataclasses.replace(arch, num_classes=1000, name="")  # what the TinyNAS format holds
    foreign = [j for j, s in enumerate(arch.stages) if s.block not in TINYNAS_BLOCKS]
    if foreign:  # a family TinyNAS does not have: refused, naming the stage
        with pytest.raises(InputError) as info:
            tinynas.dumps(arch)
        assert info.value.field == f"stages[{foreign[0]}].block"
    else:
        assert tinynas.parse(tinynas.dumps(arch), resolution=arch.resolution) == plain


# -- 1. architecture JSON ----------------------------------------------------------------

def draw_indent(doc) -> int | None:
    return 2 if len(repr(doc)) % 2 else None  # both layouts, chosen by the document itself


architecture_docs = st.one_of(st.just(json.loads(EXAMPLE_TEXT)), architectures(max_stages=4).map(Architecture.to_dict))
architecture_texts = st.one_of(
    mutated(architecture_docs, json_values).map(lambda d: json.dumps(d, indent=draw_indent(d))),
    mutated_text(st.one_of(st.just(EXAMPLE_TEXT), architectures(max_stages=3).map(Architecture.to_json))),
    mutated_text(mutated(architecture_docs, json_values, max_mutations=2).map(json.dumps)),
    st.text(max_size=60),
)


@_settings(500)
@given(architecture_texts)
@example('{"version": 1, "a\\nb": 1}')  # found: an unknown field spelled with a line break broke the one-line message
@example('{"version": 1, "stem": {"channels": 8, "\\u2028": 1}, "stages": []}')
@example('{"version": 1, "stem": {"channels": 8}, "stages": [' + "[" * 100_000)
@example('{"version": 1, "resolution": ' + "9" * 5000 + "}")
def test_architecture_json_loads_or_raises_input_error(text):
    arch = clean(Architecture.from_json, text)
    event("loaded" if arch else "refused")
    if arch is not None:
        assert_round_trips(arch)


@_settings(200)
@given(st.data())
def test_architecture_files_with_flipped_bytes_load_or_raise_input_error(tmp_path, data):
    source = data.draw(st.one_of(st.just(EXAMPLE_TEXT), architectures(max_stages=3).map(Architecture.to_json)))
    raw = data.draw(flipped_bytes(source.encode("utf-8")))
    path = tmp_path / "arch.json"
    path.write_bytes(raw)
    arch = clean(Architecture.load, path)
    event("loaded" if arch else "refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert arch is None
        return
    from_text = clean(Architecture.from_json, text)
    assert (arch is None) == (from_text is None)
    if arch is not None:
        assert arch == from_text
        assert_round_trips(arch)


# -- 2. TinyNAS structure text ---------------------------------------------------------------

RESOLUTIONS = (224, 288, 32, 64, 1, 7, 16384)
published_texts = st.sampled_from(sorted(PUBLISHED_TEXTS.values()))
small_dumps = architectures(max_stages=4, blocks=TINYNAS_BLOCKS).map(tinynas.dumps)
tinynas_docs = st.one_of(published_texts, small_dumps).map(ast.literal_eval)  # the test's own parse: literals only


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / MARKER_NAME
    yield path
    assert not path.exists(), "a code snippet was executed"


def test_the_code_snippets_would_create_the_marker_if_evaluated(tmp_path):
    """Control: each sentinel is real code that leaves the marker behind when it runs."""
    for i, template in enumerate(CODE_TEMPLATES + CODE_STATEMENTS):
        target = tmp_path / f"control-{i}"
        snippet = template.format(m=target)
        try:
            eval(compile(snippet, "<snippet>", "eval"), {})  # noqa: S307 - a control of the sentinel
        except SyntaxError:
            exec(compile(snippet, "<snippet>", "exec"), {})  # noqa: S102
        assert target.exists(), f"the sentinel {template!r} does not create its marker"


@_settings(500)
@given(
    st.one_of(
        mutated(tinynas_docs, literal_values).map(repr),
        mutated_text(st.one_of(published_texts, small_dumps)),
        mutated_text(mutated(tinynas_docs, literal_values, max_mutations=2).map(repr)),
        st.text(max_size=60),
        st.from_regex(r"\[?\{('[a-zA-Z]{1,6}': -?[0-9]{1,4}, ?){0,5}\}\]?", fullmatch=True),
    ),
    st.sampled_from(RESOLUTIONS),
)
@example("[{'class': 'ConvKXBNRELU', 'a\\nb': 1}]", 224)  # found: unknown keys and classes printed raw over lines
@example("[{'class': 'Conv\\rX', 'zz': 1}]", 224)
@example("[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 8, 's': 2}, {b'\\n': 1}]", 224)
@example("-" * 100_000 + "1", 224)
@example("['\\_']", 224)  # found: an invalid escape in a string made Python warn on stderr
def test_tinynas_text_parses_or_raises_input_error(text, resolution):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arch = clean(tinynas.parse, text, resolution=resolution)
    assert not caught, f"parsing warned (a second line on stderr): {caught[0].message}"
    event("parsed" if arch else "refused")
    if arch is not None:
        assert arch.resolution == resolution
        assert tinynas.parse(tinynas.dumps(arch), resolution=resolution) == arch
        assert_round_trips(arch)


@_settings(300)
@given(st.data())
def test_tinynas_text_holding_code_is_refused_and_never_run(tmp_path, monkeypatch, marker, capsys, data):
    monkeypatch.chdir(tmp_path)
    snippets = code_snippets(marker)
    snippet = data.draw(st.sampled_from(snippets))
    base = data.draw(st.one_of(published_texts, small_dumps))
    how = data.draw(st.sampled_from(("number", "string", "wrap", "prefix", "statement", "anywhere")))
    if how == "number":  # a value of a layer becomes the code: valid Python, not a literal
        spots = list(re.finditer(r"(?<=: )[0-9]+", base))
        m = data.draw(st.sampled_from(spots))
        text = base[:m.start()] + snippet + base[m.end():]
    elif how == "string":
        spots = list(re.finditer(r"'[A-Za-z_]+'", base))
        m = data.draw(st.sampled_from(spots))
        text = base[:m.start()] + snippet + base[m.end():]
    elif how == "wrap":
        text = data.draw(st.sampled_from((
            f"(lambda: {base.strip()})()", f"[{base.strip()} for _ in [1]][0]", f"{base.strip()} if {snippet} else 0",
            f"({snippet}, {base.strip()})[1]", f"{snippet} or {base.strip()}", f"{{**{base.strip()}, 'x': {snippet}}}",
        )))
    elif how == "prefix":
        text = f"{snippet}\n{base}"
    elif how == "statement":
        statement = data.draw(st.sampled_from(CODE_STATEMENTS)).format(m=marker)
        text = data.draw(st.sampled_from((statement, f"{statement}\n{base}", f"{base}\n{statement}")))
    else:
        text = data.draw(mutated_text(st.just(base), extra=st.sampled_from(snippets)))
    resolution = data.draw(st.sampled_from(RESOLUTIONS))
    arch = clean(tinynas.parse, text, resolution=resolution)
    if how != "anywhere":
        assert arch is None, "text holding code was accepted as a TinyNAS structure"
    path = tmp_path / "evil.txt"
    path.write_text(text)
    clean(tinynas.load, path, resolution=resolution)
    status = cli.main(["score", "--tinynas", str(path), "--resolution", str(resolution)])
    _, err = capsys.readouterr()
    assert status in (0, 2) and "unexpected" not in err and "Traceback" not in err
    one_line(err.rstrip("\n"))
    assert not marker.exists(), f"code ran: {text[:200]!r}"


# -- 3. cost tables --------------------------------------------------------------------------

def _small_table() -> CostTable:
    """The units of the small bottleneck design at batch 1 and of the small squeeze-excite one at batch 2."""
    rows = []
    for batch, block in ((1, "bottleneck"), (2, "inverted_residual_se")):
        units = {u for _, u in architecture_units(small_arch(block))}
        rows += [Row(u, batch, analytic_ms(u) * batch, 0.001, 5) for u in sorted(units, key=repr)]
    meta = TableMeta("fuzz device", "analytic", threads=1, date="2026-01-01T00:00:00Z", protocol="made up", source="test_fuzz",
                     channel_block=1, calibration=Calibration(1.1, 0.001, 0.2, 0.05, 3))
    return CostTable(meta, tuple(rows))


SMALL_TABLE = _small_table()
SMALL_TABLE_TEXT = cost_table.dump(SMALL_TABLE)
SMALL_ARCHES = (small_arch("bottleneck"), small_arch("inverted_residual_se"), small_arch("basic"))


def test_the_small_table_is_valid_and_predicts(tmp_path):
    path = cost_table.save(SMALL_TABLE, tmp_path / "small.jsonl")
    assert path.read_text() == SMALL_TABLE_TEXT
    assert cost_table.load(path) == SMALL_TABLE
    for arch, batch in zip(SMALL_ARCHES, (1, 2)):
        report = load_model(str(path), batch=batch).predict(arch)
        assert report.total_ms > 0 and not report.uncovered


@st.composite
def mutated_table_text(draw) -> str:
    lines = SMALL_TABLE_TEXT.split("\n")
    for _ in range(draw(st.sampled_from((1, 1, 1, 2, 2, 3, 4)))):
        i = draw(st.one_of(st.just(0), st.integers(0, len(lines) - 1)))  # the header as often as all rows
        kind = draw(st.sampled_from(("drop", "duplicate", "swap", "garbage", "insert", "value", "value", "number", "number", "column",
                                     "blank", "truncate")))
        if kind == "drop":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind in ("garbage", "insert"):
            junk = draw(st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=30), json_values.map(json.dumps)))
            if kind == "garbage":
                lines[i] = junk
            else:
                lines.insert(i, junk)
        elif kind == "value":
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            lines[i] = json.dumps(draw(mutated(st.just(obj), json_values, max_mutations=2)))
        elif kind == "number":  # one number of the line (a row's or the calibration's) at an extreme
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            target = obj.get("meta", {}).get("calibration") if isinstance(obj, dict) and "meta" in obj else obj
            if not isinstance(target, dict):
                continue
            numeric = sorted(k for k, v in target.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            if numeric:
                target[draw(st.sampled_from(numeric))] = draw(st.sampled_from(EXTREMES + EDGE_INTS[:6]))
                lines[i] = json.dumps(obj)
        elif kind == "column":  # one more column in a row, or one more field in the header's meta
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            target = obj.get("meta") if isinstance(obj, dict) and "meta" in obj else obj
            if isinstance(target, dict):
                target[draw(json_keys)] = draw(json_values)
                lines[i] = json.dumps(obj)
        elif kind == "blank":
            lines.insert(i, draw(st.sampled_from(("", " ", "\t", "\r"))))
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        if not lines:
            lines = [""]
    text = "\n".join(lines)
    if draw(st.integers(0, 9)) == 0:
        text = text.replace("\n", "\r\n")
    if draw(st.integers(0, 9)) == 0:
        text = draw(mutated_text(st.just(text)))
    return text


_HEADER = '{"format": "deepmad-cost-table", "version": 1, "meta": {"device": "d", "backend": "b"CAL}}'
_ROW = ('{"op": "conv", "batch": 1, "c_in": 8, "c_out": 8, "kernel": 3, "stride": 1, "size": 8, "fused_add": false, '
        '"act": "relu", "ms": MS, "spread": SPREAD, "repeats": null}')
_CAL = ', "calibration": {"scale": SCALE, "per_unit_ms": 0, "per_mweight_ms": 0, "fixed_ms": 0, "designs": 1}'


def _table(ms="0.5", spread="null", scale=None, extra="") -> str:
    header = _HEADER.replace("CAL", _CAL.replace("SCALE", scale) if scale else "")
    return header + "\n" + _ROW.replace("MS", ms).replace("SPREAD", spread)[:-1] + extra + "}\n"


@_settings(400)
@given(mutated_table_text(), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=2))
@example(_table(ms="1" + "0" * 400), [])  # found: integers beyond the float range raised OverflowError
@example(_table(spread="-" + "1" * 400), [])
@example(_table(scale="9" * 400), [])
@example(_table(extra=', "a\\nb": 1'), [])  # found: unknown column names printed raw over lines
@example(_table().replace('"backend": "b"', '"backend": "b", "\\u2028": 1'), [])
@example(_table(ms="9" * 5000), [])
def test_cost_tables_load_or_raise_table_error(tmp_path, text, flips):
    path = tmp_path / "table.jsonl"
    raw = bytearray(text.encode("utf-8"))
    for at, bits in flips:
        if raw:
            raw[at % len(raw)] ^= bits
    path.write_bytes(bytes(raw))
    table = clean(cost_table.load, path, errors=(TableError,))
    model = clean(load_model, str(path))
    event("loaded" if table else "refused")
    assert table is not None or model is None
    if table is None:
        return
    again = tmp_path / "again.jsonl"
    cost_table.save(table, again)
    assert cost_table.load(again) == table
    if model is not None:
        report = clean(model.predict, SMALL_ARCHES[0], errors=(TableError, InputError))
        if report is not None:  # inf where finite but absurd numbers (1e308 ms) add up beyond the float range
            assert report.total_ms >= 0, report


# -- 3b. the TinyNAS op-profiler importer ---------------------------------------------------------------

SIZE_TOKENS = ("0", "-1", "9" * 5000, "1" + "0" * 30, "4294967296", "1048577", "99999999", "0" * 30 + "7", "\u0663",
               "1.5", " 1", "0x10", "", "+1", "1_0")
LATENCY_TOKENS = ("-1", "0", "0.0", ".5", "5.", "1e999", "9" * 400, "1e-999", "nan", "inf", "-0.5", "1e", "0.25 ms", "1,5")

profiler_fields = st.tuples(
    st.sampled_from(("Regular", "Regular", "Depthwise")),
    st.sampled_from((1, 1, 8)),  # batch
    st.sampled_from((3, 8, 16, 32, 64, 96)),  # c_in
    st.sampled_from((7, 14, 28, 56, 112)),  # h
    st.integers(0, 5),  # 0: w differs from h
    st.sampled_from((8, 16, 32, 64)),  # c_out of a Regular conv
    st.sampled_from((1, 3, 5)),
    st.sampled_from((1, 2)),
    st.sampled_from((0, 1)),
    st.tuples(st.integers(0, 5), st.floats(0, 50)).map(lambda t: "-1" if t[0] == 0 else f"{t[1]:.4f}"),  # -1: failed
    st.sampled_from((" ", " ", "\t", "  ", " \t")),
)


def _profiler_row(f) -> list[str]:
    kind, batch, c_in, h, same, c_out, k, s, fused, latency, sep = f
    w = h if same else (h * 2 if h < 100 else 7)
    c_out = c_in if kind == "Depthwise" else c_out
    return [kind, str(batch), str(c_in), str(h), str(w), str(c_out), str(k), str(s), str(fused), sep, latency]


def _render_profiler_row(fields: list[str]) -> str:
    return "{" + ",".join(fields[:9]) + "}" + fields[9] + fields[10]


@st.composite
def profiler_texts(draw) -> str:
    """A TinyNAS op-profiler table of distinct convs, with at most a few fields gone bad."""
    rows = [_profiler_row(f) for f in draw(st.lists(profiler_fields, min_size=1, max_size=12, unique_by=lambda f: f[:9]))]
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 1, 2)))):
        row = draw(st.sampled_from(rows))
        i = draw(st.integers(0, 10))
        if i == 10:
            row[i] = draw(st.one_of(st.sampled_from(LATENCY_TOKENS), st.text(max_size=5)))
        elif i == 9:
            row[i] = draw(st.sampled_from(("", ",", "\u3000", "\x0b")))
        else:
            row[i] = draw(st.one_of(st.sampled_from(SIZE_TOKENS), st.sampled_from(("Grouped", "regular", "2")), st.text(max_size=4)))
    text = draw(st.sampled_from(("\n", "\r\n"))).join(_render_profiler_row(r) for r in rows)
    if draw(st.integers(0, 5)) == 0:
        text = draw(mutated_text(st.just(text), max_edits=2))
    return text


@_settings(300)
@given(profiler_texts(), st.sampled_from(("conv_data.fp16.out", "conv_data.fp16.out", "conv_data.fp32.out", "conv_data.int8.out",
                                          "conv_data.out", "conv_data.fp16.fp32.out")))
@example("{Regular,1,8,8,8,8,3,1,0} 0.5\n{Regular," + "9" * 5000 + ",8,8,8,8,3,1,0} 0.5", "conv_data.fp16.out")  # found: ValueError
@example("{Regular,1,8,8,8,8,3,1,0} " + "9" * 400, "conv_data.fp16.out")  # found: an infinite latency was imported
@example("{Regular,1,8,8,8,8,3,1,0} 1e999", "conv_data.fp16.out")
@example("{Regular,1,8,8,8,8,3,9999999,0} 0.5", "conv_data.fp16.out")  # found: a stride no table can hold was imported
def test_tinynas_profiler_tables_import_or_raise_table_error(tmp_path, text, name):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    imported = clean(import_tinynas, path, errors=(TableError,))
    event("imported" if imported else "refused")
    if imported is None:
        return
    table = imported.table
    assert table.rows and imported.failed + imported.non_square + len(table.rows) <= len(text.splitlines())
    assert all(math.isfinite(r.ms) and r.ms >= 0 for r in table.rows)
    saved = cost_table.save(table, tmp_path / "imported.jsonl")
    assert cost_table.load(saved) == table, "an imported table does not load back"


# -- 4. unit parsers ------------------------------------------------------------------------------

number_texts = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"\s?[-+]?[0-9]{0,6}\.?[0-9]{0,6}([eE][-+]?[0-9]{1,4})?\s?(k|K|M|G|T|ms|s|us|m|)\s?", fullmatch=True),
    st.sampled_from(NASTY_TEXT),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)
range_texts = st.one_of(
    number_texts,
    st.from_regex(r"\s?[-+]?[0-9]{0,5}\s?(:\s?[-+]?[0-9]{0,5}\s?){0,2}", fullmatch=True),
    st.tuples(st.integers(-3, 10**30), st.integers(-3, 10**30)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.sampled_from(("1:16", "16:1", "0:1", ":", "1:", ":1", "1:2:3", "\u0663:\u0665", "1_0:2_0", " 3 : 5 ", "9" * 5000)),
)


@pytest.mark.parametrize("parse,field", [(parse_amount, "--flops"), (parse_duration_ms, "--latency")], ids=["amount", "duration"])
@_settings(300)
@given(text=number_texts)
def test_amounts_and_durations_are_positive_finite_values_or_input_errors(parse, field, text):
    value = clean(parse, text, field)
    if value is not None:
        assert isinstance(value, float) and math.isfinite(value) and value > 0


@_settings(300)
@given(range_texts)
def test_parse_range_gives_positive_ordered_integers_or_input_error(text):
    value = clean(parse_range, text, "--depth")
    if value is not None:
        lo, hi = value
        assert type(lo) is int and type(hi) is int and 0 < lo <= hi


# -- 5. the command line -----------------------------------------------------------------------

PROFILER_TEXT = "\n".join((
    "{Regular,1,3,64,64,8,3,2,0} 0.05",
    "{Regular,1,8,32,32,8,3,1,0} 0.02",
    "{Regular,1,8,32,32,8,3,1,1} 0.021",
    "{Depthwise,1,8,32,32,8,3,1,0} 0.01",
    "{Regular,1,8,32,32,16,1,1,0} -1",
    "{Regular,1,8,32,16,16,1,1,0} 0.3",
))
INPUTS = {
    "example.json": EXAMPLE_TEXT,
    "small.json": SMALL_ARCHES[0].to_json(),
    "small-se.json": SMALL_ARCHES[1].to_json(),
    "small.txt": tinynas.dumps(SMALL_ARCHES[0]),
    "r18.txt": PUBLISHED_TEXTS.get("deepmad-R18.txt", ""),
    "bad.json": '{"format": "deepmad-architecture", "version": 1, "stem": {"channels": NaN}, "stages": [[[',
    "bad.txt": "[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': __import__('os').getpid()}]",
    "table.jsonl": SMALL_TABLE_TEXT,
    "bad.jsonl": SMALL_TABLE_TEXT.replace('"ms": ', '"ms": -', 1) + "{\n",
    "conv_data.fp16.out": PROFILER_TEXT,
    "conv_data.fp32.out": PROFILER_TEXT + "\n{Depthwise,1,8,8,8,9,3,1,0} 1",
    "empty.json": "",
}
INSTALLED = "small-dev"
ARCH_FILES = ("example.json", "small.json", "small-se.json", "bad.json", "empty.json", "small.txt", "missing.json", "adir", ".")
TINYNAS_FILES = ("small.txt", "r18.txt", "bad.txt", "small.json", "missing.txt", "adir")
TABLES = (INSTALLED, "table.jsonl", "bad.jsonl", "missing.jsonl", "conv_data.fp16.out", "no-such-device", "adir", "small.json", "")
PROFILER_FILES = ("conv_data.fp16.out", "conv_data.fp32.out", "table.jsonl", "missing.out", "adir", "empty.json")
#: Not among them: a name longer than the file system allows ("n" * 300); see _short_output_names.
OUTPUTS = ("out.json", "out.txt", "model.py", "new.jsonl", "x.jsonl", "small.json", "table.jsonl", "-", ".", "..", "adir", "tables",
           "", " ", "missing-folder/x.json", "adir/x.jsonl", "adir/")
NUMBERS = ("224", "64", "32", "7", "0", "-1", "1", "2", "3", "8", "16384", "16385", "nan", "inf", "-inf", "1e999", "1e-999",
           "9" * 5000, "", " ", "1.8G", "11.7M", "250k", "0.3", "12ms", "0.012s", "800us", "1:16", "16:1", "8:64", "1,2", "2,1,2,2",
           "2,2,2,2,2", "3,5,7", "0,1,2", "1.5:6", "-", "\u0663", "1,,2", "a:b", "1,nan", "1e308,1e308,1e308,1e308")
#: Values for the options that take one, by option, usable ones first (the others take any of NUMBERS).
VALUES_FOR = {
    "--tinynas": TINYNAS_FILES, "--table": TABLES, "-o": OUTPUTS, "--out": OUTPUTS, "--json": OUTPUTS, "--plot": OUTPUTS,
    "--preset": (*PRESETS, "DeepMAD-R18", "deepmad-r1", "none"), "--name": ("v100", "my_dev-1.2", "..", ".", "bad name", "", "n" * 65),
    "--device": ("NVIDIA V100", "cpu", "cuda:7", "", " ", "a\tb", "x" * 300),
    "--resolution": ("64", "224", "32", "0", "-1", "16384", "16385", "9" * 5000),
    "--score-resolution": ("64", "224", "128", "16384", "16385", "0", "-5", "1e3"),
    "--batch": ("1", "2", "3", "0", "-1", "1.0"),
    "--alpha": ("1,1,1,8", "1,1,1", "1,2,3,4", "0,0,0,0", "nan,1,1,1", "-1,1,1,1", "1e999,1,1,1", "1e308,1e308,1e308,1e308", "", ","),
    "--beta": ("10", "0", "0.5", "-1", "nan", "inf", "1e308", "-0"),
    "--penalty-stages": ("0,1,2", "3", "1,2,3", "99", "0,0", "-1", "", "1,,2", "9" * 30),
}
COMMANDS = ("score", "convert", "latency", "tables", "presets", "import-table", "generate", "design", "profile", "latency-check")
POSITIONALS = {"score": ARCH_FILES, "convert": ARCH_FILES, "latency": ARCH_FILES, "generate": ARCH_FILES, "import-table": PROFILER_FILES}
#: Options whose effect is not a clean exit status: help exits, --debug re-raises.
BANNED = ("--help", "--debug")


def _subparsers() -> dict:
    parser = cli.build_parser()
    return next(a for a in parser._actions if a.choices and "score" in a.choices).choices


#: Commands that run long (a solve, measurements) when they get valid options: always given a bad option value.
#: So are commands added to the parser after this file was written (they are not fuzzed as such).
SLOW = ("design", "profile", "latency-check", *(c for c in _subparsers() if c not in COMMANDS))


def _command_options() -> dict[str, list[tuple[str, tuple[str, ...] | None]]]:
    """Each command's options with their values (``None``: a flag), from the parser itself."""
    out = {}
    for name, sub in _subparsers().items():
        options = []
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in BANNED or flag == "-h" or flag == "--verify":
                    continue
                if action.nargs == 0:
                    options.append((flag, None))
                else:
                    values = tuple(action.choices) if action.choices else VALUES_FOR.get(flag, NUMBERS)
                    options.append((flag, values + ("junk",)))
        out[name] = options
    return out


COMMAND_OPTIONS = _command_options()
OPTIONS = tuple(sorted({flag for options in COMMAND_OPTIONS.values() for flag, _ in options}))
VALUES = tuple(dict.fromkeys((*INPUTS, INSTALLED, *OUTPUTS, *NUMBERS, *BLOCK_TYPES, *PRESETS, "json", "tinynas", "macs", "milp", "--")))
#: generate verifies with torch by default where the CLI has --no-verify: fuzzed lines never build a model.
NO_VERIFY = ["--no-verify"] if any(flag == "--no-verify" for flag, _ in COMMAND_OPTIONS["generate"]) else []
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
random_tokens = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00" + LINE_BREAKS), max_size=10
)


def harmless(token: str) -> bool:
    """Not help, --debug or --verify (argparse takes any unambiguous prefix of an option: ``--he``, ``--verif``)."""
    if token.startswith("-h"):
        return False
    flag = token.split("=", 1)[0]
    return not (flag.startswith("--") and len(flag) >= 3 and any(b.startswith(flag) for b in (*BANNED, "--verify")))


def _required() -> dict[str, set[str]]:
    return {name: {a.option_strings[0] for a in sub._actions if a.required and a.option_strings} for name, sub in _subparsers().items()}


REQUIRED = _required()
ARCH_COMMANDS = ("score", "convert", "latency", "generate")


@st.composite
def command_lines(draw) -> list[str]:
    """A command with an input, its required options and a few others, with values of their kind (or junk)."""
    command = draw(st.sampled_from(COMMANDS))
    argv = [command]
    options = dict(COMMAND_OPTIONS[command])
    if command in ARCH_COMMANDS:
        source = draw(st.sampled_from(("arch", "arch", "tinynas", "tinynas", "both", "none")))
        if source in ("arch", "both"):
            argv.append(draw(st.sampled_from(ARCH_FILES)))
        if source in ("tinynas", "both"):
            argv += ["--tinynas", draw(st.sampled_from(TINYNAS_FILES)), "--resolution", draw(st.sampled_from(VALUES_FOR["--resolution"]))]
    elif command in POSITIONALS and draw(st.integers(0, 5)):
        argv.append(draw(st.sampled_from(POSITIONALS[command])))
    flags = sorted(f for f in REQUIRED[command] if f in options and draw(st.integers(0, 7)))
    flags += draw(st.lists(st.sampled_from(sorted(options)), max_size=3)) if options else []
    for flag in flags:
        values = options[flag]
        if values is None:
            argv.append(flag)
            continue
        value = draw(st.one_of(st.sampled_from(values[:3]), st.sampled_from(values[:3]), st.sampled_from(values), random_tokens))
        argv += draw(st.sampled_from(([flag, value],) * 5 + ([f"{flag}={value}"], [flag])))
    if draw(st.integers(0, 5)) == 0:  # something out of place
        at = draw(st.integers(0, len(argv)))
        argv.insert(at, draw(st.one_of(st.sampled_from(VALUES), st.sampled_from(OPTIONS), random_tokens)))
    return argv


@st.composite
def chaotic_lines(draw) -> list[str]:
    """Any tokens from the vocabulary, in any order."""
    first = draw(st.one_of(st.sampled_from(COMMANDS), st.sampled_from(COMMANDS), st.sampled_from(OPTIONS), random_tokens))
    item = st.one_of(
        st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)).map(list),
        st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)).map(lambda t: [f"{t[0]}={t[1]}"]),
        st.sampled_from(OPTIONS).map(lambda o: [o]),
        st.sampled_from(VALUES).map(lambda v: [v]),
        random_tokens.map(lambda t: [t]),
        st.tuples(st.sampled_from(OPTIONS), random_tokens).map(list),
        st.sampled_from(COMMANDS).map(lambda c: [c]),
    )
    return [first] + [t for part in draw(st.lists(item, max_size=7)) for t in part]


#: Command lines that work (the slow ones up to their bad option): the seeds of the mutated lines.
GOOD_LINES = (
    ("score", "small.json"),
    ("score", "example.json", "--json"),
    ("score", "--tinynas", "small.txt", "--resolution", "64", "--json", "--score-resolution", "128"),
    ("score", "small-se.json", "--alpha", "1,1,1,8", "--beta", "0.5", "--penalty-stages", "1,2,3"),
    ("convert", "small.json", "--to", "tinynas"),
    ("convert", "--tinynas", "r18.txt", "--resolution", "224", "--to", "json", "-o", "out.json"),
    ("latency", "small.json", "--table", INSTALLED),
    ("latency", "small-se.json", "--table", "table.jsonl", "--batch", "2", "--json"),
    ("latency", "--tinynas", "small.txt", "--resolution", "64", "--table", "table.jsonl"),
    ("generate", "small.json", "-o", "model.py"),
    ("import-table", "conv_data.fp16.out"),
    ("import-table", "conv_data.fp16.out", "--name", "v100", "--device", "NVIDIA V100"),
    ("import-table", "conv_data.fp16.out", "-o", "new.jsonl", "--dtype", "fp32"),
    ("tables",),
    ("presets",),
    ("design", "--preset", "deepmad-r18", "--json", "-"),
    ("profile", "--preset", "deepmad-r18", "-o", "new.jsonl"),
    ("latency-check", "--table", "table.jsonl", "--held-out"),
)


@st.composite
def mutated_lines(draw) -> list[str]:
    """A working command line with 0 to 3 changes: a value replaced, an option added, a token dropped,
    duplicated, moved or joined to its option with ``=``."""
    argv = list(draw(st.sampled_from(GOOD_LINES)))
    options = dict(COMMAND_OPTIONS.get(argv[0], ()))
    for _ in range(draw(st.sampled_from((0, 1, 1, 1, 2, 2, 3)))):
        i = draw(st.integers(1, len(argv))) if len(argv) > 1 else 1
        kind = draw(st.sampled_from(("value", "value", "value", "add", "drop", "duplicate", "move", "join", "random")))
        if kind == "value" and i < len(argv):
            pool = options.get(argv[i - 1]) or VALUES
            argv[i] = draw(st.one_of(st.sampled_from(pool), st.sampled_from(VALUES), random_tokens))
        elif kind == "add" and options:
            flag = draw(st.sampled_from(sorted(options)))
            values = options[flag]
            argv[i:i] = [flag] if values is None else [flag, draw(st.one_of(st.sampled_from(values), random_tokens))]
        elif kind == "drop" and i < len(argv):
            del argv[i]
        elif kind == "duplicate" and i < len(argv):
            argv.insert(i, argv[i])
        elif kind == "move" and i < len(argv):
            argv.insert(draw(st.integers(0, len(argv) - 1)), argv.pop(i))
        elif kind == "join" and i < len(argv) and argv[i - 1].startswith("-"):
            argv[i - 1:i + 1] = [f"{argv[i - 1]}={argv[i]}"]
        elif kind == "random":
            argv.insert(i, draw(st.one_of(random_tokens, st.sampled_from(OPTIONS), st.sampled_from(COMMANDS))))
    return argv


def _output_flag(flag: str) -> bool:
    return flag == "-o" or (len(flag) >= 3 and "--out".startswith(flag))


def _short_output_names(argv: list[str]) -> list[str]:
    """Output file names cut to 100 characters: a longer name than the file system allows makes
    deepmad/files.py's atomic_write_bytes raise OSError (ENAMETOOLONG) from path.is_file() (see the report)."""
    out = []
    for i, token in enumerate(argv):
        flag, eq, value = token.partition("=")
        if eq and _output_flag(flag):
            token = f"{flag}={value[:100]}"
        elif i and _output_flag(argv[i - 1]):
            token = token[:100]
        out.append(token)
    return out


def safe(argv: list[str]) -> list[str]:
    argv = _short_output_names([t for t in argv if harmless(t)])
    if any(t in SLOW for t in argv):
        argv += ["--resolution", "0"]  # argparse refuses it before the command runs
    if "generate" in argv:
        argv += NO_VERIFY
    return argv


argvs = st.one_of(mutated_lines(), mutated_lines(), mutated_lines(), command_lines(), command_lines(), chaotic_lines()).map(safe)


class StartedSlowWork(BaseException):
    """Raised by the stand-ins of the solver, the measurements and torch checks: a case must never get that far."""


def _stop(*args, **kwargs):
    raise StartedSlowWork("a fuzzed command line started a solve, a measurement or a torch build")


@pytest.fixture
def cli_sandbox(tmp_path, monkeypatch):
    """Fresh copies of the inputs in a fresh working folder per call; installed tables in it too."""
    import generators.pytorch
    import hwmodels.profile
    from deepmad.hardware import latencycheck

    monkeypatch.setattr(cli, "solve", _stop)
    monkeypatch.setattr(hwmodels.profile, "profile", _stop)
    monkeypatch.setattr(latencycheck, "check", _stop)
    monkeypatch.setattr(latencycheck, "calibrate_apart", _stop)
    if hasattr(generators.pytorch, "verified"):
        monkeypatch.setattr(generators.pytorch, "verified", _stop)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)

    def fresh() -> Path:
        work = Path(tempfile.mkdtemp(dir=tmp_path))
        for name, text in INPUTS.items():
            (work / name).write_text(text)
        (work / "adir").mkdir()
        tables = work / "tables"
        tables.mkdir()
        (tables / f"{INSTALLED}.jsonl").write_text(SMALL_TABLE_TEXT)
        monkeypatch.setenv("DEEPMAD_TABLES", str(tables))
        monkeypatch.chdir(work)
        return work

    return fresh


def test_the_cli_vocabulary_reaches_success_and_each_kind_of_failure(cli_sandbox, capsys):
    """The fuzzed vocabulary is meaningful: such lines succeed, and fail cleanly, as intended."""
    cases = [(safe(list(line)), 2 if line[0] in SLOW else 0) for line in GOOD_LINES] + [
        (["score", "bad.json"], 2),
        (["score", "--tinynas", "bad.txt", "--resolution", "64"], 2),
        (["latency", "small.json", "--table", "bad.jsonl"], 2),
        (["import-table", "conv_data.fp32.out", "-o", "x.jsonl"], 2),
        (safe(["design", "--preset", "deepmad-r18"]), 2),
    ]
    for argv, expected in cases:
        cli_sandbox()
        status = cli.main(argv)
        _, err = capsys.readouterr()
        assert status == expected, (argv, err)


@pytest.mark.slow
@_settings(600)
@given(argvs)
@example(["import-table", "conv_data.fp16.out", "--device", "", "-o", "x.jsonl"])  # found: wrote a table that does not load
@example(["import-table", "conv_data.fp16.out", "--device", " "])
@example(["import-table", "conv_data.fp16.out", "-o", "adir"])
@example(["import-table", "conv_data.fp16.out", "-o", "."])
@example(["latency", "small.json", "--table", "conv_data.fp16.out"])
def test_cli_exits_cleanly_on_random_command_lines(cli_sandbox, capsys, argv):
    work = cli_sandbox()
    try:
        status = cli.main(list(argv))
        out, err = capsys.readouterr()
        event(f"{argv[0] if argv[0] in COMMANDS else 'other'}: exit {status}")
        assert status in (0, 1, 2), (argv, status, err)
        assert "Traceback" not in err and "unexpected " not in err, (argv, err)
        if status != 0:
            assert err.startswith("deepmad: "), (argv, err)
            one_line(err.rstrip("\n"))
        else:
            assert err == "", (argv, err)
        if status == 0 and argv[0] == "import-table":
            written = re.search(r" to (.+?)(?:; use it as --table .*)?$", out.strip())
            assert written, out
            cost_table.load(Path(written.group(1)))  # what was imported loads back
    finally:
        os.chdir(work.parent)
        shutil.rmtree(work, ignore_errors=True)
