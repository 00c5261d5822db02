"""PyTorch source generator: an architecture becomes a standalone ``.py`` model file.

The file imports only torch and the standard library. It holds

* ``ARCHITECTURE``: the JSON description it was made from,
* ``EXPECTED``: the costs deepmad computed (``params``, ``macs`` with the
  classifier as built by ``build_model()`` with defaults; ``backbone_params``,
  ``backbone_macs``, ``flops_tinynas`` without it; ``resolution``),
* ``STAGES``: every stage as the layouts of its first block and of its other
  blocks, written out from :mod:`deepmad.model.blocks` (the one definition of each
  block type),
* ``DEFAULT_CFG``: preprocessing and layout in timm's ``pretrained_cfg`` keys,
* ``DESIGN``: where the design comes from (:func:`deepmad.solution.record`:
  the command, the problem, the certificate), also summed up in the
  docstring; ``None`` for a file made from an architecture alone,
* ``build_model(**kwargs) -> nn.Module``: a network initialised as the model
  zoos do, with timm's ``get_classifier`` / ``reset_classifier``.

The text is deterministic: the same architecture gives the same bytes.
"""

from __future__ import annotations

import ast
import json
import os
import pprint
import select
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

from deepmad import __version__
from deepmad.errors import DeepmadError
from deepmad.files import atomic_write_text
from deepmad.model.accounting import costs
from deepmad.model.architecture import Architecture, Stage, Stem
from deepmad.model.blocks import BLOCK_TYPES, BlockLayout


def _layout_literal(layout: BlockLayout) -> str:
    convs = ", ".join(f"({c.c_in}, {c.c_out}, {c.kernel}, {c.stride}, {c.groups}, {c.act})" for c in layout.convs)
    se = "None" if layout.se is None else f"({layout.se.after}, {layout.se.hidden})"
    return f"dict(convs=[{convs}], se={se}, shortcut={layout.shortcut!r}, pool={layout.pools_shortcut}, act={layout.activation!r})"


def _stages_literal(arch: Architecture) -> str:
    lines = []
    for j, (stage, first, rest) in enumerate(arch.stage_layouts()):
        lines.append(
            f"    # stage {j}: {stage.depth} x {stage.block}, kernel {stage.kernel}, "
            f"{first.c_in} -> {stage.channels} channels, inner {stage.inner}, stride {stage.stride}"
        )
        lines.append(f"    dict(depth={stage.depth},")
        lines.append(f"         first={_layout_literal(first)},")
        lines.append(f"         rest={'None' if rest is None else _layout_literal(rest)}),")
    return "[\n" + "\n".join(lines) + "\n]"


def _features_literal(arch: Architecture) -> str:
    items = [f"    dict(after_stage={lv.last_stage}, num_chs={lv.channels}, reduction={lv.reduction})," for lv in arch.levels()]
    return "[\n" + "\n".join(items) + "\n]"


def _title(arch: Architecture) -> str:
    """The preset's or architecture's name, else what the network is."""
    if arch.name:
        return arch.name
    blocks = sorted({stage.block for stage in arch.stages})
    return f"a {'/'.join(blocks)} network of {len(arch.stages)} stages"


def _amount(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.6g}{suffix}"
    return f"{value:.6g}"


def _provenance(record: dict[str, Any] | None) -> str:
    """The docstring's paragraph on where the design comes from (empty without a record)."""
    if not record:
        return ""
    problem = record["problem"]
    b = problem["budgets"]
    limits = []
    if b.get("flops") is not None:
        limits.append(f"FLOPs <= {_amount(b['flops'])} ({b['flops_convention']} convention, classifier excluded)")
    if b.get("params") is not None:
        limits.append(f"params <= {_amount(b['params'])} (classifier excluded)")
    if b.get("latency_ms") is not None:
        limits.append(f"latency <= {b['latency_ms']:g} ms on {b['latency_table']}")
    if b.get("rho") is not None:
        limits.append(f"rho <= {b['rho']:g}")
    if b.get("max_layers") is not None:
        limits.append(f"layers <= {b['max_layers']}")
    rules = problem["rules"]
    if rules.get("nondecreasing"):
        limits.append("channels nondecreasing")
    if rules.get("max_depth_spread") is not None:
        limits.append(f"depth spread <= {rules['max_depth_spread']}")
    g = record.get("gap")
    gap = "no bound proven" if g is None else f"bound {record['bound']:,.4f}, gap {f'{g:.2%}' if g >= 1e-4 else f'{g:.1e}'}"
    lines = [
        f"Command (deepmad {record['deepmad_version']}): {record['command']}",
        f"Problem{' ' + problem['name'] if problem.get('name') else ''}: {'; '.join(limits) or 'no budgets'}.",
        f"Certificate: {record['status']}, objective {record['objective']:,.4f}, {gap} ({record['method']} method).",
        "DESIGN holds the whole record (the problem's space, scoring and rules too).",
    ]
    return "\n\n" + "\n".join(textwrap.fill(line, 96, subsequent_indent="    ", break_on_hyphens=False, break_long_words=False)
                             for line in lines)


def _default_cfg(arch: Architecture) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` keys: input size at the design resolution, ImageNet mean and std
    for 3 input channels (0.5 each otherwise), the usual 0.875 centre crop."""
    side = -(-arch.resolution // arch.total_stride)
    rgb = arch.in_channels == 3
    return {
        "num_classes": arch.num_classes,
        "input_size": (arch.in_channels, arch.resolution, arch.resolution),
        "pool_size": (side, side),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": (0.485, 0.456, 0.406) if rgb else (0.5,) * arch.in_channels,
        "std": (0.229, 0.224, 0.225) if rgb else (0.5,) * arch.in_channels,
        "first_conv": "stem.0",
        "classifier": "fc",
    }


def render(arch: Architecture, *, record: dict[str, Any] | None = None) -> str:
    """The model file text for ``arch``; ``record`` (:func:`deepmad.solution.record`): where the
    design comes from, written into the docstring and ``DESIGN``."""
    c = costs(arch)
    record = json.loads(json.dumps(record, allow_nan=False)) if record is not None else None  # literals only
    expected = {
        "params": c.params_with_classifier,
        "macs": c.macs_with_classifier,
        "backbone_params": c.params,
        "backbone_macs": c.macs,
        "flops_tinynas": c.flops_tinynas,
        "resolution": arch.resolution,
    }
    stem = arch.stem_conv()
    head = arch.head_conv()
    text = _TEMPLATE.format(
        title=_title(arch),
        version=__version__,
        provenance=_provenance(record),
        in_channels=arch.in_channels,
        last_levels=tuple(range(max(0, len(arch.levels()) - 3), len(arch.levels()))),
        resolution=arch.resolution,
        params=c.params_with_classifier,
        macs=c.macs_with_classifier,
        architecture=pprint.pformat(arch.to_dict(), sort_dicts=False, width=100),
        design=pprint.pformat(record, sort_dicts=False, width=100),
        expected=pprint.pformat(expected, sort_dicts=False, width=100),
        default_cfg=pprint.pformat(_default_cfg(arch), sort_dicts=False, width=100),
        reduction=arch.total_stride,
        stem=f"({stem.c_in}, {stem.c_out}, {stem.kernel}, {stem.stride}, 1)",
        stages=_stages_literal(arch),
        head="None" if head is None else f"({head.c_in}, {head.c_out}, 1, 1, 1)",
        features=_features_literal(arch),
        num_classes=arch.num_classes,
    )
    ast.parse(text)
    return text


def load(text: str) -> types.ModuleType:
    """The Python module of a rendered model file (its ``build_model``, ``EXPECTED``, ...)."""
    module = types.ModuleType("deepmad_generated")
    exec(compile(text, "<generated model>", "exec"), module.__dict__)
    return module


def build(arch: Architecture):
    """The ``nn.Module`` (eval mode) that the model file of ``arch`` builds with its defaults."""
    return load(render(arch)).build_model().eval()


def measure(text: str) -> dict[str, int]:
    """Build the model of a rendered file with torch and count it.

    Returns ``params`` (``sum(p.numel())``) and ``macs``
    (``FlopCounterMode`` total / 2, one forward of batch 1 at the design
    resolution), both with the classifier as ``build_model()`` makes it.
    The model is built on torch's meta device: shapes and counts without
    memory or arithmetic (1.9 s against 0.3 s for a 42-block network).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = load(text)
    side = module.EXPECTED["resolution"]
    with torch.device("meta"):
        model = module.build_model().eval()
        x = torch.zeros(1, module.ARCHITECTURE["in_channels"], side, side)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    return {"params": sum(p.numel() for p in model.parameters()), "macs": counter.get_total_flops() // 2}


def warm_up() -> None:
    """Measure a tiny network holding one block of every type. Torch loads much of itself lazily on
    the first :func:`measure` (1.5 s against 0.3 s after, for deepmad-r18's design); a
    :class:`Measurer` pays that while the caller works."""
    stages = tuple(Stage(name, channels=16, inner=16, kernel=3, depth=1, stride=2 if j == 0 else 1)
                   for j, name in enumerate(BLOCK_TYPES))
    measure(render(Architecture(stem=Stem(channels=8), stages=stages, resolution=32)))


class Measurer:
    """:func:`measure` in a second process, started before the caller's other work (a solve): it
    imports torch and warms it up (:func:`warm_up`; about 2.5 s) meanwhile, on the other core, so
    that checking a model file afterwards takes a fraction of a second. Where the process fails, :meth:`measure` measures here."""

    def __init__(self):
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=env, start_new_session=True)  # its own session: a Ctrl-C is for the command, which ends it
        except OSError:
            self.proc = None

    def measure(self, text: str) -> dict[str, int]:
        if self.proc is not None:
            try:
                # The answer is one line; reading it, not waiting for the process to exit, saves
                # torch's teardown (about 0.7 s).
                self.proc.stdin.write(json.dumps({"text": text}) + "\n")
                self.proc.stdin.close()
                if select.select([self.proc.stdout], [], [], ANSWER_SECONDS)[0]:
                    line = self.proc.stdout.readline()
                    if line:
                        return json.loads(line)
            except (OSError, ValueError):
                pass
            finally:
                self.close()
        return measure(text)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
        self.proc = None


_SERVE = (
    "import json, sys\n"
    "import torch  # while the caller works\n"
    "from generators.pytorch import measure, warm_up\n"
    "warm_up()\n"
    "print(json.dumps(measure(json.loads(sys.stdin.readline())['text'])), flush=True)\n"
)

ANSWER_SECONDS = 300.0
"""Longest wait for a :class:`Measurer`'s answer before measuring here instead."""


def verified(arch: Architecture, *, measurer: Measurer | None = None, record: dict[str, Any] | None = None) -> str:
    """The model file text for ``arch``, after building the model with torch and checking that its
    parameter count and MACs equal the accounting's; a mismatch raises
    :class:`~deepmad.errors.DeepmadError`. ``measurer``: a :class:`Measurer` started earlier;
    ``record``: as in :func:`render`."""
    text = render(arch, record=record)
    c = costs(arch)
    measured = measurer.measure(text) if measurer is not None else measure(text)
    expected = {"params": c.params_with_classifier, "macs": c.macs_with_classifier}
    if measured != expected:
        raise DeepmadError(f"generated model does not match the accounting: measured {measured}, expected {expected}")
    return text


def write(arch: Architecture, path: str | Path, *, verify: bool = False, force: bool = True, measurer: Measurer | None = None,
          record: dict[str, Any] | None = None) -> Path:
    """Write the model file for ``arch`` to ``path`` atomically; returns the path.

    With ``verify``, first check the model with torch (:func:`verified`); on a mismatch nothing
    is written. Without ``force``, an existing file with other content is refused
    (:func:`deepmad.files.atomic_write_text`). ``record``: as in :func:`render`.
    """
    text = verified(arch, measurer=measurer, record=record) if verify else render(arch, record=record)
    atomic_write_text(path, text, force=force)
    return Path(path)


_TEMPLATE = '''"""{title}: a CNN generated by deepmad {version}.

Design input: {in_channels} x {resolution} x {resolution}. Parameters {params:,}, MACs {macs:,}
(classifier included, as built by ``build_model()`` with its defaults).{provenance}

    model = build_model()                            # classifier network, {num_classes} classes
    model = build_model(num_classes=10)              # another classifier width
    model = build_model(features_only=True)          # backbone: list of feature maps
    model = build_model(features_only=True, out_indices={last_levels})
    model.reset_classifier(10); model.get_classifier()  # timm's handles; model.pretrained_cfg

Feature map ``i`` has ``FEATURES[i]["num_chs"]`` channels and side
``ceil(input side / FEATURES[i]["reduction"])``. This file needs only torch.
"""

from collections import OrderedDict

import torch
from torch import nn

ARCHITECTURE = {architecture}

EXPECTED = {expected}

# Where the design comes from (deepmad.solution.record): None where the file was made from an
# architecture alone.
DESIGN = {design}

# A conv is (in channels, out channels, kernel, stride, groups), followed by BatchNorm;
# a block's convs add whether its activation follows them. A block applies its convs
# in order, each but the last with its activation where it has one, an optional
# squeeze-excite (after conv index se[0], hidden width se[1]), adds the shortcut
# ("none", "identity" or a 1x1 "projection", average-pooled first when pool is
# true) and applies its activation where the last conv has one.
STEM = {stem}
STAGES = {stages}
HEAD = {head}
FEATURES = {features}

# Preprocessing and layout as timm's pretrained_cfg spells them (input_size is the design's).
DEFAULT_CFG = {default_cfg}

ACTIVATIONS = {{"relu": lambda: nn.ReLU(inplace=True), "silu": lambda: nn.SiLU(inplace=True), "gelu": nn.GELU}}


class ConvBnAct(nn.Sequential):
    """Conv (no bias, padding kernel // 2), BatchNorm, and an activation unless ``act`` is None."""

    def __init__(self, c_in, c_out, kernel, stride=1, groups=1, act="relu"):
        layers = [
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act is not None:
            layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Global pool, 1x1 conv+BN to ``hidden``, SiLU, 1x1 conv+BN back, sigmoid gate."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.reduce = ConvBnAct(channels, hidden, 1, act="silu")
        self.expand = ConvBnAct(hidden, channels, 1, act=None)

    def forward(self, x):
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.reduce(scale)))


class Block(nn.Module):
    """One block, built from its layout (see STAGES)."""

    def __init__(self, convs, se, shortcut, pool, act):
        super().__init__()
        self.convs = nn.ModuleList(
            ConvBnAct(*conv, act=act if has_act and i < len(convs) - 1 else None)
            for i, (*conv, has_act) in enumerate(convs)
        )
        self.se_after = se[0] if se is not None else None
        self.se = SqueezeExcite(convs[se[0]][1], se[1]) if se is not None else None
        c_in, c_out = convs[0][0], convs[-1][1]
        if shortcut == "none":
            self.shortcut = None
        else:
            parts = OrderedDict()
            if pool:
                parts["pool"] = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
            if shortcut == "projection":
                parts["conv"] = ConvBnAct(c_in, c_out, 1, act=None)
            self.shortcut = nn.Sequential(parts)
        self.act = ACTIVATIONS[act]() if convs[-1][5] else nn.Identity()

    def zero_init_last(self):
        """Zero the last BatchNorm of the residual branch: the block starts as its shortcut."""
        if self.shortcut is not None:
            nn.init.zeros_(self.convs[-1][1].weight)

    def forward(self, x):
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out)
            if i == self.se_after:
                out = self.se(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


def make_stage(depth, first, rest):
    return nn.Sequential(Block(**first), *[Block(**rest) for _ in range(depth - 1)])


class Net(nn.Module):
    """stem -> stages -> head conv -> global average pool -> classifier.

    ``features_only=True`` makes ``forward`` return the feature maps listed in
    ``FEATURES`` (selected by ``out_indices``) instead of logits; the head conv
    and the classifier are then not built. ``num_classes=0`` builds no classifier
    (``forward`` returns pooled features).

    Initialisation (``init_weights``) is that of the ResNet and RegNet model
    zoos: convs Kaiming-normal with fan-out, BatchNorm weight 1 and bias 0, the
    classifier normal with std 0.01 and bias 0, and with ``zero_init_residual``
    (the default) the last BatchNorm of every residual branch zero, so that
    each block starts as its shortcut and a deep network trains stably.
    """

    def __init__(self, num_classes={num_classes}, features_only=False, out_indices=None, drop_rate=0.0, zero_init_residual=True):
        super().__init__()
        self.num_classes = num_classes if not features_only else 0
        self.pretrained_cfg = self.default_cfg = dict(DEFAULT_CFG, num_classes=self.num_classes)
        if out_indices is not None and not features_only:
            raise ValueError("out_indices selects feature maps: use it with features_only=True")
        self.features_only = features_only
        self.out_indices = tuple(range(len(FEATURES))) if out_indices is None else tuple(out_indices)
        for i in self.out_indices:
            if not -len(FEATURES) <= i < len(FEATURES):
                raise ValueError(f"out_indices: {{i}} is not a feature level (0..{{len(FEATURES) - 1}})")
        self.feature_info = [dict(FEATURES[i], index=i) for i in self.out_indices]
        self.stem = ConvBnAct(*STEM)
        self.stages = nn.Sequential(*[make_stage(**stage) for stage in STAGES])
        if not features_only:
            self.head = ConvBnAct(*HEAD) if HEAD is not None else nn.Identity()
            self.num_features = HEAD[1] if HEAD is not None else STAGES[-1]["first"]["convs"][-1][1]
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.drop = nn.Dropout(drop_rate)
            self.fc = self._classifier(num_classes)
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual=True):
        """(Re)initialise every weight as the class docstring says."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Block):
                    m.zero_init_last()

    def _classifier(self, num_classes):
        if num_classes <= 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(fc.weight, std=0.01)
        nn.init.zeros_(fc.bias)
        return fc

    def get_classifier(self):
        """The classifier (``nn.Identity`` where ``num_classes`` is 0)."""
        self._need_head()
        return self.fc

    def reset_classifier(self, num_classes, global_pool="avg"):
        """Replace the classifier by a new one of ``num_classes`` outputs (0: none, ``forward`` then
        returns pooled features), initialised as in ``init_weights``; pooling stays global average."""
        self._need_head()
        if global_pool not in ("avg", None):
            raise ValueError(f"global_pool: only 'avg' is built, got {{global_pool!r}}")
        weight = next(self.parameters())
        self.num_classes = num_classes
        self.pretrained_cfg = self.default_cfg = dict(DEFAULT_CFG, num_classes=num_classes)
        self.fc = self._classifier(num_classes).to(device=weight.device, dtype=weight.dtype)

    def forward_levels(self, x):
        """The feature maps of all FEATURES levels, in order."""
        x = self.stem(x)
        ends = {{level["after_stage"]: i for i, level in enumerate(FEATURES)}}
        levels = [x] if -1 in ends else []
        for j, stage in enumerate(self.stages):
            x = stage(x)
            if j in ends:
                levels.append(x)
        return levels

    def forward_features(self, x):
        """Last feature map after the head conv: (N, num_features, ceil(H / {reduction}), ceil(W / {reduction}))."""
        self._need_head()
        return self.head(self.stages(self.stem(x)))

    def forward_head(self, x, pre_logits=False):
        self._need_head()
        x = self.drop(torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.fc(x)

    def _need_head(self):
        if self.features_only:
            raise RuntimeError("built with features_only=True: forward() returns the feature maps; there is no head")

    def forward(self, x):
        if self.features_only:
            levels = self.forward_levels(x)
            return [levels[i] for i in self.out_indices]
        return self.forward_head(self.forward_features(x))


def build_model(**kwargs):
    """Build the network; keyword arguments go to ``Net`` (num_classes, features_only, out_indices, drop_rate,
    zero_init_residual)."""
    return Net(**kwargs)
'''
