"""The metrics of a design as one JSON-ready dict, and as a table for people."""

from __future__ import annotations

from typing import Any

from ..model.accounting import costs
from ..model.architecture import Architecture
from ..model.entropy import Scoring, score


def metrics(arch: Architecture, scoring: Scoring = Scoring()) -> dict[str, Any]:
    """Costs and DeepMAD score of ``arch``.

    ``params``, ``flops_tinynas`` and ``macs`` exclude the classifier, as the
    reference does; ``*_with_classifier`` include it. ``entropy`` is the
    weighted sum ``sum alpha_i H_i``, ``rho`` the largest prefix effectiveness.
    """
    c = costs(arch)
    s = score(arch, scoring)
    return {
        "params": c.params,
        "flops_tinynas": c.flops_tinynas,
        "macs": c.macs,
        "params_with_classifier": c.params_with_classifier,
        "macs_with_classifier": c.macs_with_classifier,
        "entropy": s.entropy,
        "penalty": s.penalty,
        "objective": s.objective,
        "rho": s.rho,
        "layers": s.layers,
        "resolution": arch.resolution,
        "score_resolution": s.resolution,
        "alpha": list(s.alpha),
        "beta": scoring.beta,
        "penalty_stages": list(s.penalty_stages),
        "prefixes": [
            {
                "last_stage": p.last_stage,
                "layers": p.layers,
                "channels": p.channels,
                "side": p.side,
                "log_width_sum": p.log_width_sum,
                "entropy": p.entropy,
                "rho": p.rho,
            }
            for p in s.prefixes
        ],
    }


def _stages_label(first: int, last: int) -> str:
    names = (["stem"] if first < 0 else []) + [str(j) for j in range(max(first, 0), last + 1)]
    return names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"


def table(arch: Architecture, m: dict[str, Any]) -> str:
    """A readable table of :func:`metrics` ``m`` for ``arch``."""
    title = arch.name or "architecture"
    lines = [
        f"{title}: {len(arch.stages)} stages, input {arch.resolution}x{arch.resolution}, scored at {m['score_resolution']}",
        "",
        f"  params          {m['params']:>16,}   {m['params_with_classifier']:,} with classifier",
        f"  FLOPs (tinynas) {m['flops_tinynas']:>16,}",
        f"  MACs            {m['macs']:>16,}   {m['macs_with_classifier']:,} with classifier",
        f"  layers          {m['layers']:>16}",
        "",
        "  stage  block                 out  inner  k  depth  stride",
    ]
    for j, s in enumerate(arch.stages):
        lines.append(f"  {j:>5}  {s.block:<20} {s.channels:>4}  {s.inner:>5}  {s.kernel}  {s.depth:>5}  {s.stride:>6}")
    lines += ["", "  prefix  stages    D     c      r        S            H    alpha     rho"]
    first = -1
    for i, (p, a) in enumerate(zip(m["prefixes"], m["alpha"])):
        label = _stages_label(first, p["last_stage"]) + ("+head" if i == len(m["prefixes"]) - 1 and arch.head else "")
        lines.append(
            f"  {i:>6}  {label:<8} {p['layers']:>4} {p['channels']:>5} {p['side']:>6} {p['log_width_sum']:>8.3f} "
            f"{p['entropy']:>12.3f} {a:>8g} {p['rho']:>7.4f}"
        )
        first = p["last_stage"] + 1
    lines += [
        "",
        f"  entropy (weighted)  {m['entropy']:.4f}",
        f"  depth penalty       {m['penalty']:.4f}   beta {m['beta']:g}, stages {m['penalty_stages']}",
        f"  objective           {m['objective']:.4f}",
        f"  max rho             {m['rho']:.4f}",
    ]
    return "\n".join(lines)
