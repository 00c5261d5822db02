"""Pictures and a report of a sweep: Pareto fronts as PNG, and a self-contained HTML page.

The front plots each point's objective against its design's cost (FLOPs in
the problem's convention, parameters or latency), in the unit the sweep's
values call for (:meth:`deepmad.whatif.Sweep.unit`: MFLOPs for a 5M-40M sweep,
GFLOPs for 1G-8G), one curve per combination of the other axes (a device, a
block type, ...). Points whose optimal design is the same design are one
marker, which names the budgets it spans. A marker's shape says which budgets
bind there, so a switch of the binding constraint is visible along the curve.
Reference designs (published structures, or any architecture the user passes)
are scored under the same problem and marked with their names.

The HTML report is one file with nothing to fetch: the front is inline SVG,
and hovering a marker shows its design, its points' budgets, status and gap,
and their certificates (the bound and the budget multipliers); its table
shows each number to the precision that means something.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..model.architecture import Architecture
from ..problem.problem import Problem
from .axes import AXES
from .sweeps import Sweep

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


@dataclass
class Marker:
    """One marker of a front: a design, and the points (row indices) whose design it is."""

    series: str
    x: float  # in the front's unit
    objective: float
    binding: str
    points: list[int] = field(default_factory=list)


def _unit(sweep: Sweep, name: str, values: Sequence[Any] = ()) -> tuple[float, str, str]:
    """The unit of budget ``name``: the sweep's, where it varies ``name``, else that of ``values``."""
    return sweep.unit(name) if name in sweep.axes else AXES[name].display(values)


def _series(sweep: Sweep, x: str) -> dict[str, list[int]]:
    # The curve runs along the budget axis of x (or the first budget varied); the other axes,
    # budgets included, make one curve per combination.
    along = x if x in sweep.axes else next((a for a in sweep.axes if a in (*COST_FIELDS, "rho")), None)
    others = [a for a in sweep.axes if a != along]
    out: dict[str, list[int]] = {}
    for i, row in enumerate(sweep.rows):
        if row.get("objective") is None or row.get(COST_FIELDS[x]) is None:
            continue
        label = ", ".join(f"{a} {_value(sweep, a, row[a])}" for a in others) or "optimum"
        out.setdefault(label, []).append(i)
    return out


def markers(sweep: Sweep, x: str = "flops") -> tuple[list[Marker], tuple[float, str, str]]:
    """The front's markers (one per distinct design of each curve, in order of cost) and the x unit."""
    fld = COST_FIELDS[x]
    scale = _unit(sweep, x, [r[fld] for r in sweep.rows if r.get(fld) is not None])
    out = []
    for label, members in _series(sweep, x).items():
        by_design: dict[str, Marker] = {}
        for i in members:
            row = sweep.rows[i]
            arch = row.get("architecture")
            key = json.dumps(arch, sort_keys=True) if arch is not None else json.dumps([row.get("design"), row[fld], row["objective"]])
            if key not in by_design:  # the first (tightest) point's binding budgets
                by_design[key] = Marker(label, row[fld] / scale[0], row["objective"], row.get("binding") or "")
            by_design[key].points.append(i)
        out += sorted(by_design.values(), key=lambda m: m.x)
    return out, scale


def _figure(sweep: Sweep, x: str, references: Sequence[Reference], title: str):
    """The front drawn with matplotlib, each marker an artist with the id ``point-K`` (K: its
    position in :func:`markers`), each reference's star ``reference-K``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn, (scale, unit, _) = markers(sweep, x)
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    seen_binding: set[str] = set()
    colours: dict[str, str] = {}
    for label in dict.fromkeys(m.series for m in drawn):
        mine = [m for m in drawn if m.series == label]
        (line,) = ax.plot([m.x for m in mine], [m.objective for m in mine], "-", lw=1.2, label=label)
        colours[label] = line.get_color()
    for k, m in enumerate(drawn):
        (point,) = ax.plot([m.x], [m.objective], marker=_marker(m.binding), color=colours[m.series], ms=6, ls="none")
        point.set_gid(f"point-{k}")
        seen_binding.add(m.binding)
    for k, ref in enumerate(references):
        value = {"flops": ref.flops, "params": ref.params, "latency": ref.latency_ms}[x]
        if value is None:
            continue
        (star,) = ax.plot([value / scale], [ref.objective], marker="*", color="black", ms=12, ls="none")
        star.set_gid(f"reference-{k}")
        ax.annotate(ref.name, (value / scale, ref.objective), textcoords="offset points", xytext=(6, -12), fontsize=8)
    # Legend entries for the marker shapes (which budget binds) and the reference star.
    for binds in sorted(seen_binding):
        ax.plot([], [], marker=_marker(binds), color="grey", ls="none", label=f"binding: {binds.replace(';', ' + ') or 'none'}")
    if references:
        ax.plot([], [], marker="*", color="black", ms=10, ls="none", label="reference design")
    ax.set_xlabel(f"design {x if x != 'flops' else 'FLOPs'}" + (f" ({unit})" if unit else ""))
    ax.set_ylabel("DeepMAD objective (weighted entropy - depth penalty)")
    ax.set_title(title or f"Optimal objective against {x}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to label when no point has a design
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig, drawn


def _save(fig, fmt: str) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if fmt == "svg":  # text kept as text (searchable, small); no metadata, which would name its vocabulary by URL
        with plt.rc_context({"svg.fonttype": "none"}):
            fig.savefig(buf, format=fmt, metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    else:
        fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf.getvalue()


def front_png(sweep: Sweep, *, x: str = "flops", references: Sequence[Reference] = (), title: str = "") -> bytes:
    """The Pareto front of ``sweep`` (objective against ``x``: ``flops``, ``params`` or ``latency``) as PNG bytes."""
    return _save(_figure(sweep, x, references, title)[0], "png")


# -- numbers as a person reads them ---------------------------------------------------------------

def _num(value: float) -> str:
    """``value`` to 4 significant digits, whole numbers from 10,000 on (with thousands separators)."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _value(sweep: Sweep, axis: str, value: Any, *, unit: bool = True) -> str:
    """An axis value: a budget in its unit (``20 MFLOPs``; the number alone without ``unit``), a
    switch as on/off, others as given."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    kind = AXES.get(axis)
    if kind is not None and kind.units and isinstance(value, (int, float)):
        scale, name, _ = sweep.unit(axis) if axis in sweep.axes else kind.display([value])
        return f"{_num(value / scale)} {name}" if unit else _num(value / scale)
    return str(value)


def _formats(sweep: Sweep) -> dict[str, tuple[str, Callable[[Any], str]]]:
    """Per column: its heading and how a value is shown."""
    def scaled(name: str, values: list) -> tuple[str, Callable[[Any], str]]:
        scale, unit, _ = _unit(sweep, name, values)
        return unit, lambda v: _num(v / scale)

    def column(c: str) -> list:
        return [r.get(c) for r in sweep.rows if r.get(c) is not None]

    out: dict[str, tuple[str, Callable[[Any], str]]] = {}
    for axis in sweep.axes:
        unit = sweep.unit(axis)[1]
        out[axis] = (f"{axis} ({unit})" if unit else axis, lambda v, a=axis: _value(sweep, a, v, unit=False))
    for c, budget in (("design_flops", "flops"), ("design_params", "params")):
        unit, show = scaled(budget, column(c))
        out[c] = (f"{c} ({unit})", show)
    for c in (c for c in sweep.columns() if c.startswith("next_change_")):
        unit, show = scaled(c.removeprefix("next_change_"), column(c))
        out[c] = (f"{c} ({unit})", show)
    out |= {
        "objective": ("objective", lambda v: f"{v:,.2f}"),
        "bound": ("bound", lambda v: f"{v:,.2f}"),
        "gap": ("gap", lambda v: f"{100 * v:.2f} %"),
        "design_latency_ms": ("design latency (ms)", lambda v: f"{v:.2f}"),
        "design_rho": ("design rho", lambda v: f"{v:.3f}"),
        "solve_seconds": ("solve (s)", lambda v: f"{v:.1f}"),
        "binding": ("binding", lambda v: v.replace(";", " + ")),
    }
    return out


def _rates(sweep: Sweep) -> list[tuple[str, list[float | None]]]:
    """The sensitivity columns: per budget axis, the objective per unit from neighbouring points,
    and the certificates' multipliers where any point has one."""
    out = []
    for b in (a for a in sweep.axes if a in AXES and AXES[a].budget is not None):
        one = sweep.unit(b)[2]
        per = f" per {one}" if one else f" per unit of {b}"
        out.append((f"objective{per} (neighbours)", sweep.marginals(b)))
        multipliers = sweep.multipliers(b)
        if any(m is not None for m in multipliers):
            out.append((f"objective{per} (multiplier)", multipliers))
    return out


def _hover(sweep: Sweep, drawn: list[Marker], x: str) -> list[dict[str, Any]]:
    """What hovering each marker shows: its design, its points with their budgets, status, gap and
    certificate; and, raw, the points' indices and the objective (which the tests check)."""
    rates = {b: sweep.multipliers(b) for b in sweep.axes if b in AXES and AXES[b].budget is not None}
    out = []
    for m in drawn:
        first = sweep.rows[m.points[0]]
        lines = [f"objective {m.objective:,.2f}" + (f" ({m.series})" if m.series != "optimum" else "")]
        for i in m.points:
            row = sweep.rows[i]
            at = ", ".join(f"{a} {_value(sweep, a, row[a])}" for a in sweep.axes)
            gap = f", gap {100 * row['gap']:.2f} %" if row.get("gap") is not None else ""
            lines.append(f"point {i}: {at}: {row['status']}{gap}")
            prices = [f"{v:.3g} per {sweep.unit(b)[2] or b}" for b, values in rates.items() if (v := values[i]) is not None]
            if row.get("certificate") is not None:
                lines.append(f"  certificate: bound {row['certificate']['bound']:,.2f}" + (f"; multipliers {', '.join(prices)}" if prices else ""))
        out.append({"id": f"point-{len(out)}", "title": first.get("design") or "", "lines": lines, "points": m.points,
                    "objective": m.objective, "design": first.get("design")})
    return out


def _reference_cards(sweep: Sweep, references: Sequence[Reference]) -> list[dict[str, Any]]:
    """What hovering a reference's star shows: its name, objective and costs under the sweep's problem."""
    out = []
    for k, ref in enumerate(references):
        lines = [f"objective {ref.objective:,.2f}", f"FLOPs {_value(sweep, 'flops', ref.flops)}, {_value(sweep, 'params', ref.params)}"]
        if ref.latency_ms is not None:
            lines.append(f"latency {ref.latency_ms:.2f} ms")
        out.append({"id": f"reference-{k}", "title": f"reference: {ref.name}", "lines": lines, "points": [], "objective": ref.objective,
                    "design": None})
    return out


_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('hover-data').textContent);
  var tip = document.getElementById('tip');
  function show(d, el) {
    tip.textContent = '';
    var head = document.createElement('b');
    head.textContent = d.title;
    tip.appendChild(head);
    d.lines.forEach(function (line) {
      var div = document.createElement('div');
      div.textContent = line;
      tip.appendChild(div);
    });
    var box = el.getBoundingClientRect();
    tip.style.left = (window.scrollX + box.right + 8) + 'px';
    tip.style.top = (window.scrollY + box.top - 4) + 'px';
    tip.style.display = 'block';
  }
  data.forEach(function (d) {
    var el = document.getElementById(d.id);
    if (!el) { return; }
    el.style.cursor = 'pointer';
    el.addEventListener('mouseenter', function () { show(d, el); });
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    if (window.location.hash === '#' + d.id) { show(d, el); }  // a link to a point opens its card
  });
})();
"""


_TEXT = ("status", "binding", "design", "error")


def html_report(sweep: Sweep, *, title: str, x: str = "flops", references: Sequence[Reference] = (), notes: str = "") -> str:
    """A self-contained HTML page with nothing to fetch: the front as inline SVG whose markers show
    their designs and certificates on hover, the sweep's table (only the columns that hold a value,
    each number in its unit and to a meaningful precision) with the objective per unit of each
    budget axis, and the reference designs."""
    fig, drawn = _figure(sweep, x, references, title)
    svg = _save(fig, "svg").decode("utf-8")
    svg = svg[svg.index("<svg"):]
    hover = _hover(sweep, drawn, x) + _reference_cards(sweep, references)
    formats = _formats(sweep)
    columns = [c for c in sweep.columns() if any(r.get(c) not in (None, "") for r in sweep.rows)]
    rates = _rates(sweep)
    head = "".join(f"<th>{html.escape(formats.get(c, (c,))[0])}</th>" for c in columns) + "".join(
        f"<th>{html.escape(name)}</th>" for name, _ in rates)

    def cell(c: str, value: Any) -> str:
        if value is None or value == "":
            return ""
        return formats[c][1](value) if c in formats else str(value)

    body = []
    for i, row in enumerate(sweep.rows):
        cells = "".join(f"<td{' class=text' if c in _TEXT else ''}>{html.escape(cell(c, row.get(c)))}</td>" for c in columns)
        cells += "".join(f"<td>{'' if v[i] is None else html.escape(f'{v[i]:.3g}')}</td>" for _, v in rates)
        body.append(f"<tr class='{html.escape(str(row.get('status')))}'>{cells}</tr>")
    refs = ""
    if references:
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{r.objective:,.2f}</td><td>{html.escape(_value(sweep, 'flops', r.flops))}</td>"
            f"<td>{html.escape(_value(sweep, 'params', r.params))}</td>"
            f"<td>{'' if r.latency_ms is None else f'{r.latency_ms:.2f}'}</td></tr>" for r in references)
        refs = ("<h2>Reference designs</h2><table><tr><th>name</th><th>objective</th><th>FLOPs</th><th>params</th>"
                f"<th>latency (ms)</th></tr>{rows}</table>")
    axes = "; ".join(f"{html.escape(a)}: {len(v)} value(s)" for a, v in sweep.axes.items())
    shared = sum(len(m.points) > 1 for m in drawn)
    data = json.dumps(hover).replace("</", "<\\/")
    rate_note = (" The multiplier columns are the slopes of the points' certificates (column generation's bound) in the budget; "
                 "the bound is concave in the budget while the optimum moves in steps, so the two agree only where the front is smooth "
                 "and the bound meets it." if any("multiplier" in n for n, _ in rates) else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
tr.time_limit td, tr.interrupted td {{ background: #fff6e0; }}
tr.infeasible td {{ background: #fde8e8; }}
td.text {{ text-align: left; }}
figure {{ margin: 1em 0; }}
figure svg {{ max-width: 100%; height: auto; }}
#tip {{ position: absolute; display: none; background: #fffff4; border: 1px solid #888; padding: 4px 8px; font-size: 12px;
        box-shadow: 2px 2px 4px rgba(0, 0, 0, 0.2); pointer-events: none; white-space: pre; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{axes}; {len(sweep.rows)} exact solves. Rows not proven optimal are shaded; infeasible points in red.
Hover a marker (or open the page at <code>#point-K</code>) for its design, its points and their certificates{'; where several points have the same optimal design, one marker stands for them all' if shared else ''}.
The "neighbours" columns are central differences of the optimal objective between neighbouring points of that axis.{rate_note}</p>
<p>{html.escape(notes)}</p>
<figure>{svg}</figure>
<div id="tip"></div>
<h2>Points</h2>
<table><tr>{head}</tr>
{''.join(body)}
</table>
{refs}
<script type="application/json" id="hover-data">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
