"""The architecture model: a typed, immutable, validated description of a design.

A design is a plain stack (spec section 1)::

    stem -> stage 0 -> ... -> stage M-1 -> [head conv] -> global pool -> classifier

Stages are numbered from 0 in this package. Each part validates itself on
construction and raises :class:`~deepmad.errors.InputError` naming the bad
field; :meth:`Architecture.from_dict` prefixes the path (``stages[2].kernel``).
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, shown
from ..files import read_text
from .blocks import BLOCK_TYPES, BlockLayout, BlockType, Conv

FORMAT = "deepmad-architecture"
_NAME = re.compile(r"[A-Za-z0-9_.\-]{0,64}")
VERSION = 1


MAX = {
    "channels": 1 << 16,
    "inner": 1 << 16,
    "kernel": 31,
    "depth": 1000,
    "resolution": 1 << 14,
    "in_channels": 1 << 16,
    "num_classes": 1 << 20,
}
"""Upper bounds of the integer fields: far beyond any real network, low enough that
counting stays fast and every model file can be built."""


def _field_name(key: Any) -> str:
    """``key`` as it may stand in a field path: itself where it is a plain name (letters, digits,
    ``_``, ``.``, ``-``), else its shortened repr, so that a message naming it stays on one line."""
    return key if isinstance(key, str) and _NAME.fullmatch(key) and key else shown(key)


def _int_field(obj: Any, name: str, *, choices: tuple[int, ...] = ()) -> int:
    """Check ``obj.name`` is a positive integer (within ``MAX`` or ``choices``) and store it as a plain int."""
    value = getattr(obj, name)
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if choices:
        if number not in choices:
            raise InputError(name, f"must be {' or '.join(map(str, choices))}, got {shown(value)}")
    elif number is None or number <= 0:
        raise InputError(name, f"must be a positive integer, got {shown(value)}")
    elif number > MAX[name]:
        raise InputError(name, f"must be at most {MAX[name]:,}, got {shown(number)}")
    object.__setattr__(obj, name, int(number))  # a plain int: subclasses never reach generated code
    return int(number)


def _kernel(obj: Any) -> None:
    if _int_field(obj, "kernel") % 2 == 0:
        raise InputError("kernel", f"must be odd (1, 3, 5, 7, ...), got {obj.kernel}")


@dataclass(frozen=True)
class Stem:
    """The first conv: ``kernel x kernel``, ``stride``, input channels -> ``channels``; BN, ReLU."""

    channels: int
    kernel: int = 3
    stride: int = 2

    def __post_init__(self) -> None:
        _int_field(self, "channels")
        _kernel(self)
        _int_field(self, "stride", choices=(1, 2))


@dataclass(frozen=True)
class Stage:
    """``depth`` identical blocks of type ``block``.

    The first block maps the previous width to ``channels`` and carries
    ``stride``; the others map ``channels -> channels`` at stride 1. ``inner``
    is the bottleneck width (bottleneck, basic) or the expanded width
    (inverted residuals, large kernel); a block type without an inner width
    (plain) takes ``inner == channels``.
    """

    block: str
    channels: int
    inner: int
    kernel: int
    depth: int
    stride: int

    def __post_init__(self) -> None:
        if not isinstance(self.block, str) or self.block not in BLOCK_TYPES:
            raise InputError("block", f"unknown block type {shown(self.block)}; use one of {', '.join(BLOCK_TYPES)}")
        _int_field(self, "channels")
        _int_field(self, "inner")
        if not self.block_type.has_inner and self.inner != self.channels:
            raise InputError("inner", f"{self.block} blocks have no inner width: set it to the channels ({self.channels}), got {self.inner}")
        _kernel(self)
        _int_field(self, "depth")
        _int_field(self, "stride", choices=(1, 2))

    @property
    def block_type(self) -> BlockType:
        return BLOCK_TYPES[self.block]

    def layouts(self, c_in: int) -> tuple[BlockLayout, BlockLayout | None]:
        """The first block's layout and the layout of the ``depth - 1`` others (``None`` when depth is 1)."""
        make = self.block_type.layout
        first = make(c_in, self.channels, self.inner, self.kernel, self.stride, True)
        rest = make(self.channels, self.channels, self.inner, self.kernel, 1, False) if self.depth > 1 else None
        return first, rest


@dataclass(frozen=True)
class Head:
    """Optional 1x1 conv ``c_last -> channels`` with BN and ReLU before the pool."""

    channels: int

    def __post_init__(self) -> None:
        _int_field(self, "channels")


@dataclass(frozen=True)
class Level:
    """A resolution level: the stem or stages up to a stride-2 block or the end.

    ``last_stage`` is the index of its last stage (-1: the stem alone);
    ``reduction`` is the input side over its output side; ``channels`` the
    channels of its output (before the head conv).
    """

    last_stage: int
    reduction: int
    channels: int


@dataclass(frozen=True)
class Architecture:
    """A whole network. ``resolution`` is the design input side (square inputs)."""

    stem: Stem
    stages: tuple[Stage, ...]
    head: Head | None = None
    resolution: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stem, Stem):
            raise InputError("stem", f"must be a Stem, got {type(self.stem).__name__}")
        if self.head is not None and not isinstance(self.head, Head):
            raise InputError("head", f"must be a Head or None, got {type(self.head).__name__}")
        if isinstance(self.stages, (str, bytes)) or not hasattr(self.stages, "__iter__"):
            raise InputError("stages", f"must be a sequence of Stage, got {type(self.stages).__name__}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise InputError("stages", "at least one stage is needed")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise InputError(f"stages[{i}]", f"must be a Stage, got {type(stage).__name__}")
        _int_field(self, "resolution")
        _int_field(self, "in_channels")
        _int_field(self, "num_classes")
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InputError("name", f"must be up to 64 letters, digits, '_', '-' or '.', got {shown(self.name)}")
        if self.resolution % self.total_stride:
            raise InputError(
                "resolution",
                f"{self.resolution} is not divisible by the total stride {self.total_stride}; "
                f"use a multiple of {self.total_stride} (e.g. {self.total_stride * max(1, round(self.resolution / self.total_stride))})",
            )

    # -- structure ---------------------------------------------------------

    @property
    def total_stride(self) -> int:
        return self.stem.stride * math.prod(s.stride for s in self.stages)

    @property
    def out_channels(self) -> int:
        """Channels entering the global pool (head width, or last stage width)."""
        return self.head.channels if self.head else self.stages[-1].channels

    def stem_conv(self) -> Conv:
        return Conv(self.in_channels, self.stem.channels, self.stem.kernel, self.stem.stride)

    def head_conv(self) -> Conv | None:
        return Conv(self.stages[-1].channels, self.head.channels, 1) if self.head else None

    def stage_inputs(self) -> list[int]:
        """Input channels of each stage."""
        return [self.stem.channels] + [s.channels for s in self.stages[:-1]]

    def stage_layouts(self) -> Iterator[tuple[Stage, BlockLayout, BlockLayout | None]]:
        """For each stage: the stage, its first block's layout, the layout of its other blocks."""
        for stage, c_in in zip(self.stages, self.stage_inputs()):
            yield (stage, *stage.layouts(c_in))

    def blocks(self) -> Iterator[tuple[int, int, BlockLayout]]:
        """Every block in order as ``(stage index, block index, layout)``."""
        for j, (stage, first, rest) in enumerate(self.stage_layouts()):
            yield j, 0, first
            for b in range(1, stage.depth):
                yield j, b, rest  # type: ignore[misc]

    def levels(self) -> list[Level]:
        """Resolution levels: a level ends right before every stride-2 stage and at the end.

        They are the DeepMAD scoring prefixes (the last one then also takes the
        head conv) and the multi-scale feature outputs of the generated model.
        """
        levels: list[Level] = []
        reduction = self.stem.stride
        for j, stage in enumerate(self.stages):
            if stage.stride == 2:
                levels.append(Level(j - 1, reduction, self.stage_inputs()[j]))
            reduction *= stage.stride
        levels.append(Level(len(self.stages) - 1, reduction, self.stages[-1].channels))
        return levels

    # -- dict / JSON -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON description (``format``, ``version`` and the fields)."""
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.name:
            out["name"] = self.name
        out.update(
            resolution=self.resolution,
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            stem=asdict(self.stem),
            stages=[asdict(s) for s in self.stages],
            head=asdict(self.head) if self.head else None,
        )
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "Architecture":
        """Build and validate from the JSON description; errors name the field path."""
        if not isinstance(data, dict):
            raise InputError("architecture", f"must be a JSON object, got {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise InputError("format", f"must be {FORMAT!r}, got {shown(data.get('format'))}")
        if "version" not in data:
            raise InputError("version", f"missing; this deepmad reads version {VERSION}")
        if isinstance(data["version"], bool) or not isinstance(data["version"], int) or data["version"] != VERSION:
            raise InputError("version", f"{shown(data['version'])} is not supported; this deepmad reads version {VERSION}")
        known = {"format", "version", "name", "resolution", "in_channels", "num_classes", "stem", "stages", "head"}
        for key in data:
            if key not in known:
                raise InputError(_field_name(key), f"unknown field; the fields are {', '.join(sorted(known))}")
        for key in ("stem", "stages"):
            if key not in data:
                raise InputError(key, "missing")
        stem = _part(Stem, data["stem"], "stem")
        if not isinstance(data["stages"], list):
            raise InputError("stages", "must be a list of stage objects")
        stages = tuple(_part(Stage, _inner_default(s), f"stages[{i}]") for i, s in enumerate(data["stages"]))
        head = None if data.get("head") is None else _part(Head, data["head"], "head")
        extra = {k: data[k] for k in ("resolution", "in_channels", "num_classes", "name") if k in data}
        return cls(stem=stem, stages=stages, head=head, **extra)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError("architecture", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
            raise InputError("architecture", f"not a usable JSON architecture ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "Architecture":
        """Read an architecture JSON file; errors name the file and the field."""
        text = read_text(path)
        try:
            return cls.from_json(text)
        except InputError as exc:
            raise InputError(f"{path}: {exc.field}", exc.message) from None


def _inner_default(stage: Any) -> Any:
    """A stage object with ``inner`` set to its channels where its block type has no inner width
    and the object leaves it out."""
    if isinstance(stage, dict) and "inner" not in stage and "channels" in stage:
        block = BLOCK_TYPES.get(stage.get("block")) if isinstance(stage.get("block"), str) else None
        if block is not None and not block.has_inner:
            return {**stage, "inner": stage["channels"]}
    return stage


def _part(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(where, f"must be an object, got {type(data).__name__}")
    names = set(kind.__dataclass_fields__)
    for key in data:
        if key not in names:
            raise InputError(f"{where}.{_field_name(key)}", f"unknown field; the fields are {', '.join(sorted(names))}")
    try:
        return kind(**data)
    except InputError as exc:
        raise exc.within(where) from None
    except TypeError:
        missing = sorted(n for n, f in kind.__dataclass_fields__.items() if n not in data and f.default is MISSING)
        raise InputError(f"{where}.{missing[0]}" if missing else where, "missing") from None
