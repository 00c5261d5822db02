"""The TinyNAS structure format: import and export, losslessly.

A TinyNAS structure file is a Python literal: either a dict whose
``best_structures`` is a list holding one list of layer dicts, or that list
of layer dicts itself. The first dict is the stem (``ConvKXBNRELU``), then one
dict per stage (``SuperResK1KXK1``, ``SuperResK1DWSEK1``, ``SuperResK1DWK1``,
``SuperResKXKX``) and optionally a final 1x1 ``ConvKXBNRELU`` head. The file
does not hold the input resolution: it is given on import.

Parsing uses :func:`ast.literal_eval`, which evaluates literals only: a file
that holds any expression, name or call is refused.
"""

from __future__ import annotations

import ast
import dataclasses
import pprint
import warnings
from pathlib import Path
from typing import Any

from ..errors import InputError, shown
from ..files import read_text
from .architecture import _NAME, MAX, Architecture, Head, Stage, Stem, _field_name
from .blocks import BLOCK_TYPES

_BY_CLASS = {bt.tinynas_class: bt for bt in BLOCK_TYPES.values() if bt.tinynas_class is not None}
_CONV = "ConvKXBNRELU"
_MAX_BYTES = 1 << 20
_CONV_KEYS = {"class", "in", "out", "k", "s"}
_STAGE_KEYS = {"class", "inner_class", "in", "out", "btn", "k", "s", "L"}


def parse(text: str, *, resolution: int, source: str = "tinynas") -> Architecture:
    """Read a TinyNAS structure from ``text`` at input side ``resolution``."""
    if len(text) > _MAX_BYTES:
        raise InputError(source, f"is larger than {_MAX_BYTES:,} characters; not a TinyNAS structure file")
    try:
        with warnings.catch_warnings():  # e.g. "invalid escape sequence" (a SyntaxWarning on stderr from Python 3.12)
            warnings.simplefilter("ignore")
            data = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise InputError(source, "not a TinyNAS structure: expected a Python literal (dicts, lists, numbers, strings) only") from None
    if isinstance(data, dict):
        if "best_structures" not in data:
            raise InputError(f"{source}: best_structures", "missing")
        data = data["best_structures"]
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], list):
            raise InputError(f"{source}: best_structures", "must be a list holding one list of layer dicts")
        data = data[0]
    if not isinstance(data, list) or not data:
        raise InputError(source, "must hold a non-empty list of layer dicts")
    for i, layer in enumerate(data):
        if not isinstance(layer, dict):
            raise InputError(f"{source}: layer {i}", f"must be a dict, got {type(layer).__name__}")
        cls = layer.get("class")
        if not isinstance(cls, str):
            raise InputError(f"{source}: layer {i}.class", f"must be a class name string, got {shown(cls)}")
        allowed = _CONV_KEYS if cls == _CONV else _STAGE_KEYS
        for key in layer:
            if key not in allowed:
                raise InputError(f"{source}: layer {i}.{_field_name(key)}", f"unknown key; a {_field_name(cls)} layer has {', '.join(sorted(allowed))}")
    try:
        return _from_layers(data, resolution)
    except InputError as exc:
        raise InputError(f"{source}: {exc.field}", exc.message) from None


def load(path: str | Path, *, resolution: int) -> Architecture:
    """Read a TinyNAS structure file at input side ``resolution``."""
    arch = parse(read_text(path, max_bytes=_MAX_BYTES), resolution=resolution, source=str(path))
    stem = Path(path).stem
    return dataclasses.replace(arch, name=stem) if _NAME.fullmatch(stem) else arch


def _get(layer: dict, key: str, where: str) -> Any:
    if key not in layer:
        raise InputError(f"{where}.{key}", "missing")
    return layer[key]


def _build(kind: type, where: str, **fields: Any) -> Any:
    try:
        return kind(**fields)
    except InputError as exc:
        raise exc.within(where) from None


def _chain(layer: dict, where: str, c_prev: int) -> None:
    if _get(layer, "in", where) != c_prev:
        raise InputError(f"{where}.in", f"is {shown(layer['in'])} but the previous layer outputs {c_prev}")


def _from_layers(layers: list[dict], resolution: int) -> Architecture:
    stem_d, rest = layers[0], layers[1:]
    if stem_d.get("class") != _CONV:
        raise InputError("layer 0.class", f"the first layer must be the {_CONV} stem, got {shown(stem_d.get('class'))}")
    in_channels = _get(stem_d, "in", "layer 0")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or not 0 < in_channels <= MAX["in_channels"]:
        raise InputError("layer 0.in", f"must be a positive integer (input channels), got {shown(in_channels)}")
    stem = _build(Stem, "layer 0", channels=_get(stem_d, "out", "layer 0"), kernel=_get(stem_d, "k", "layer 0"), stride=stem_d.get("s", 1))
    head_d = rest.pop() if rest and rest[-1].get("class") == _CONV else None
    stages = []
    c_prev = stem.channels
    for i, d in enumerate(rest, start=1):
        where = f"layer {i}"
        cls = d.get("class")
        if cls not in _BY_CLASS:
            raise InputError(f"{where}.class", f"unknown class {shown(cls)}; use one of {', '.join(sorted(_BY_CLASS))} (or {_CONV} first and last)")
        bt = _BY_CLASS[cls]
        inner_cls = d.get("inner_class", bt.tinynas_inner_class)
        if inner_cls != bt.tinynas_inner_class:
            raise InputError(f"{where}.inner_class", f"{cls} goes with {bt.tinynas_inner_class!r}, got {shown(inner_cls)}")
        _chain(d, where, c_prev)
        stage = _build(
            Stage,
            where,
            block=bt.name,
            channels=_get(d, "out", where),
            inner=_get(d, "btn", where),
            kernel=_get(d, "k", where),
            depth=_get(d, "L", where),
            stride=d.get("s", 1),
        )
        stages.append(stage)
        c_prev = stage.channels
    head = None
    if head_d is not None:
        where = f"layer {len(layers) - 1}"
        if not stages:
            raise InputError(where, "a head conv needs at least one stage between it and the stem")
        if _get(head_d, "k", where) != 1 or head_d.get("s", 1) != 1:
            raise InputError(where, "a head ConvKXBNRELU must be 1x1 with stride 1")
        _chain(head_d, where, c_prev)
        head = _build(Head, where, channels=_get(head_d, "out", where))
    return Architecture(stem=stem, stages=tuple(stages), head=head, resolution=resolution, in_channels=in_channels)


def to_layers(arch: Architecture) -> list[dict[str, Any]]:
    """The TinyNAS layer dicts of ``arch`` (resolution and classifier are not part of the format)."""
    layers: list[dict[str, Any]] = [
        {"class": _CONV, "in": arch.in_channels, "k": arch.stem.kernel, "out": arch.stem.channels, "s": arch.stem.stride}
    ]
    for j, (stage, c_in) in enumerate(zip(arch.stages, arch.stage_inputs())):
        bt = stage.block_type
        if bt.tinynas_class is None:
            raise InputError(f"stages[{j}].block", f"TinyNAS has no {stage.block} blocks; its structure format holds "
                                                    f"{', '.join(b.name for b in _BY_CLASS.values())} stages")
        layers.append(
            {
                "L": stage.depth,
                "btn": stage.inner,
                "class": bt.tinynas_class,
                "in": c_in,
                "inner_class": bt.tinynas_inner_class,
                "k": stage.kernel,
                "out": stage.channels,
                "s": stage.stride,
            }
        )
    if arch.head is not None:
        layers.append({"class": _CONV, "in": arch.stages[-1].channels, "k": 1, "out": arch.head.channels, "s": 1})
    return layers


def dumps(arch: Architecture) -> str:
    """The TinyNAS structure file text of ``arch``."""
    return pprint.pformat({"best_structures": [to_layers(arch)], "space_arch": "CnnNet"}, width=100, sort_dicts=True) + "\n"
