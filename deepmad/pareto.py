"""Pictures and a report of a sweep: Pareto fronts as PNG, and a self-contained HTML page.

The front plots each point's objective against its design's cost (FLOPs in
the problem's convention, parameters or latency, in the display units of
:data:`deepmad.whatif.AXES`), one curve per combination of the other axes
(a device, a block type, ...). A marker's shape says which budgets bind
there, so a switch of the binding constraint is visible along the curve.
Reference designs (published structures, or any architecture the user
passes) are scored under the same problem and marked with their names.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

from .architecture import Architecture
from .problem import Problem
from .whatif import AXES, Sweep

COST_FIELDS = {"flops": "design_flops", "params": "design_params", "latency": "design_latency_ms"}
"""The x axes a front can take: the budget's name -> the row field holding the design's value."""

_MARKERS = {"": "o", "flops": "s", "params": "^", "latency": "D", "rho": "v"}


def _marker(binding: str) -> str:
    """The marker of a point whose binding budgets are ``binding`` (``;``-separated): one per budget, a plus for several."""
    return "P" if ";" in binding else _MARKERS.get(binding, "o")


@dataclass(frozen=True)
class Reference:
    """A design to mark on the front, scored under the sweep's problem."""

    name: str
    objective: float
    flops: float
    params: float
    latency_ms: float | None

    @classmethod
    def of(cls, name: str, arch: Architecture, problem: Problem) -> "Reference":
        check = problem.check(arch)
        return cls(name, check.objective, check.flops, check.params, check.latency_ms)


def _series(sweep: Sweep, x: str) -> dict[str, list[dict[str, Any]]]:
    # The curve runs along the budget axis of x (or the first budget varied); the other axes,
    # budgets included, make one curve per combination.
    along = x if x in sweep.axes else next((a for a in sweep.axes if a in (*COST_FIELDS, "rho")), None)
    others = [a for a in sweep.axes if a != along]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sweep.rows:
        if row.get("objective") is None or row.get(COST_FIELDS[x]) is None:
            continue
        label = ", ".join(f"{a} {row[a]}" for a in others) or "optimum"
        out.setdefault(label, []).append(row)
    return out


def front_png(sweep: Sweep, *, x: str = "flops", references: Sequence[Reference] = (), title: str = "") -> bytes:
    """The Pareto front of ``sweep`` (objective against ``x``: ``flops``, ``params`` or ``latency``) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = AXES[x]
    field = COST_FIELDS[x]
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    seen_binding: set[str] = set()
    for label, rows in _series(sweep, x).items():
        rows = sorted(rows, key=lambda r: r[field])
        xs = [r[field] / kind.scale for r in rows]
        ys = [r["objective"] for r in rows]
        (line,) = ax.plot(xs, ys, "-", lw=1.2, label=label)
        for r, xv, yv in zip(rows, xs, ys):
            binds = r.get("binding") or ""
            ax.plot([xv], [yv], marker=_marker(binds), color=line.get_color(), ms=5, ls="none")
            seen_binding.add(binds)
    for ref in references:
        value = {"flops": ref.flops, "params": ref.params, "latency": ref.latency_ms}[x]
        if value is None:
            continue
        ax.plot([value / kind.scale], [ref.objective], marker="*", color="black", ms=12, ls="none")
        ax.annotate(ref.name, (value / kind.scale, ref.objective), textcoords="offset points", xytext=(6, -12), fontsize=8)
    # Legend entries for the marker shapes (which budget binds) and the reference star.
    for binds in sorted(seen_binding):
        ax.plot([], [], marker=_marker(binds), color="grey", ls="none", label=f"binding: {binds.replace(';', ' + ') or 'none'}")
    if references:
        ax.plot([], [], marker="*", color="black", ms=10, ls="none", label="reference design")
    unit = f" ({kind.unit})" if kind.unit else ""
    ax.set_xlabel(f"design {x if x != 'flops' else 'FLOPs'}{unit}")
    ax.set_ylabel("DeepMAD objective (weighted entropy - depth penalty)")
    ax.set_title(title or f"Optimal objective against {x}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to label when no point has a design
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def html_report(sweep: Sweep, *, title: str, figures: dict[str, bytes], references: Sequence[Reference] = (), notes: str = "") -> str:
    """A self-contained HTML page (figures inlined as PNG data): the figures, the sweep's table
    with the marginal objective per unit of each budget axis, and the reference designs."""
    budgets = [a for a in sweep.axes if a in COST_FIELDS or a == "rho"]
    marginals = {b: sweep.marginals(b) for b in budgets}
    columns = sweep.columns()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "".join(
        f"<th>d objective / d {html.escape(b)}{' (per ' + AXES[b].unit + ')' if AXES[b].unit else ''}</th>" for b in budgets)
    body = []
    for i, row in enumerate(sweep.rows):
        cells = "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns)
        cells += "".join(f"<td>{html.escape(_fmt(marginals[b][i]))}</td>" for b in budgets)
        body.append(f"<tr class='{html.escape(str(row.get('status')))}'>{cells}</tr>")
    figs = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in figures.items()
    )
    refs = ""
    if references:
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{_fmt(r.objective)}</td><td>{r.flops:,.0f}</td><td>{r.params:,.0f}</td>"
            f"<td>{html.escape(_fmt(r.latency_ms))}</td></tr>" for r in references)
        refs = ("<h2>Reference designs</h2><table><tr><th>name</th><th>objective</th><th>FLOPs</th><th>params</th>"
                f"<th>latency (ms)</th></tr>{rows}</table>")
    axes = "; ".join(f"{html.escape(a)}: {len(v)} value(s)" for a, v in sweep.axes.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
tr.time_limit td, tr.interrupted td {{ background: #fff6e0; }}
tr.infeasible td {{ background: #fde8e8; }}
figure {{ margin: 1em 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{axes}; {len(sweep.rows)} exact solves. Rows not proven optimal are shaded; infeasible points in red.
The marginal columns are central differences of the optimal objective between neighbouring points of that axis.</p>
<p>{html.escape(notes)}</p>
{figs}
<h2>Points</h2>
<table><tr>{head}</tr>
{''.join(body)}
</table>
{refs}
</body></html>
"""
