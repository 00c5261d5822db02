"""The engine's hot loop: the best option of every (output width, input width) pair of a stage.

A pricing pass (column generation), a Lagrangian pass with the entropy
products kept exact, and a longest-path pass all ask the same question of
each stage: for every output width ``c`` and input width ``a`` that may feed
it, which inner width, kernel and depth gives the largest value, when an
option's value is a linear function of its costs and entropy (the prices),
evaluated at ``G`` settings at once (the grid of future entropy weights of
:mod:`deepmad.solvers.dual`, or one setting).

With the engine's affine structure (:mod:`deepmad.solvers.engine`), the
value of pair ``p`` and kernel ``k`` (line ``q = p K + k``) fed by ``a != c``
is ``U[q, g] + a W[q] + za[a, g]``: for fixed ``g`` a line in ``a``. The best
over ``q`` for every ``a`` is the upper envelope of the lines, evaluated at the
input widths: ``O(lines + inputs)`` per output width and setting, instead of
``O(lines x inputs)``. The depth is folded into ``U`` beforehand
(:func:`tails`). With a latency price, the first block's latency is not affine
in ``a`` (:class:`deepmad.solvers.engine.Latency`), and the lines are
evaluated densely.

numba compiles the loops (measured on deepmad-29m-224, a Lagrangian pass of 8
settings: 0.1 s, against 6 s for numpy's dense broadcast of the same values).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def depth_envelope(depths: np.ndarray, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The upper envelope over the depths ``d`` of the lines ``(d - 1) r + extra[d]`` in ``r`` (the
    value of one block after the first): their slopes, intercepts and depths, and the ``r`` at which
    each overtakes the one before (ascending)."""
    slopes = (depths - 1).astype(float)
    keep: list[int] = []
    if not np.isfinite(extra).any():  # no depth allowed: no line
        return np.zeros(1), np.full(1, -np.inf), depths[:1].astype(np.int64), np.zeros(0)
    for i in np.flatnonzero(np.isfinite(extra)):  # slopes ascending; keep the lines that are on top somewhere
        while keep:
            last = keep[-1]
            if len(keep) >= 2:
                first = keep[-2]
                # ``last`` is never on top when ``i`` overtakes ``first`` before ``last`` does.
                if (extra[first] - extra[i]) * (slopes[last] - slopes[first]) <= (extra[first] - extra[last]) * (slopes[i] - slopes[first]):
                    keep.pop()
                    continue
            elif extra[i] - extra[last] >= 0 and slopes[i] == slopes[last]:
                keep.pop()
                continue
            break
        keep.append(i)
    lines = np.array(keep)
    s, b = slopes[lines], np.asarray(extra, dtype=float)[lines]
    breaks = (b[:-1] - b[1:]) / (s[1:] - s[:-1])
    return s, b, depths[lines].astype(np.int64), breaks


@njit(cache=True, nogil=True, inline="always")
def _cost(flops, params, latency, q, prices, layers):  # pragma: no cover - compiled
    """Line ``q``'s priced costs: ``prices = (per FLOP, per parameter, per ms)``, ``layers`` the
    priced layer count; the latency term only where its price is not zero."""
    c = prices[0] * flops[q] + prices[1] * params[q] + layers
    if prices[2] != 0.0:
        c += prices[2] * latency[q]
    return c


@njit(cache=True, nogil=True)
def line_costs(flops, params, latency, prices, layers):  # pragma: no cover - compiled
    """:func:`_cost` of every line."""
    out = np.empty(len(flops))
    for q in range(len(flops)):
        out[q] = _cost(flops, params, latency, q, prices, layers)
    return out


@njit(cache=True, nogil=True)
def _tail(r, slopes, intercepts, breaks):  # pragma: no cover - compiled
    """``max over d of (d - 1) r + extra[d]`` (the envelope of :func:`depth_envelope`) and its line."""
    lo, hi = 0, len(breaks)
    while lo < hi:  # the first break above r
        mid = (lo + hi) // 2
        if r >= breaks[mid]:
            lo = mid + 1
        else:
            hi = mid
    return slopes[lo] * r + intercepts[lo], lo


@njit(cache=True, nogil=True)
def _by_slope(w, K):  # pragma: no cover - compiled
    """``np.argsort(w, kind="mergesort")`` (ties in index order). Where the ``K`` kernels of every
    pair share their slope (the input feeds a 1x1 conv, as in TinyNAS's blocks), the pairs are sorted
    and each expanded by its kernels: the same order from a sort a ``K``-th the size."""
    n = len(w)
    for i in range(n):
        if w[i] != w[i - i % K]:
            return np.argsort(w, kind="mergesort")
    pairs = np.argsort(w[::K], kind="mergesort")
    order = np.empty(n, dtype=np.int64)
    for i in range(len(pairs)):
        for k in range(K):
            order[i * K + k] = pairs[i] * K + k
    return order


@njit(cache=True, nogil=True)
def envelopes(V, first, alike, rest, slope, prices, layers, slopes, intercepts, breaks, za, Z, inputs, a_lo, a_hi, same,
              starts, K, edge_start, lat_units, lat_short, bi, lat_price):  # pragma: no cover - compiled
    """Per output width ``m`` and input index ``ai`` in its range, at each setting ``g`` of the
    entropy price ``V[g]``: ``E[e, g]`` (``e = edge_start[m] + ai - a_lo[m]``), the best value over
    the lines ``q`` of ``m`` of ``U[q, g] + inputs[ai] W[q] + za[ai, g]`` (``alike[q, g]`` where
    ``ai == same[m]``), and ``Q[e, g]`` the line attaining it; per ``m``, ``best[m, g]``, the best
    over ``ai`` of ``E + Z[ai, g]``, and ``at[m, g]`` its ``ai``. A line's value holds its first
    block, ``U = V first_e + first_c + tail`` (``alike`` likewise), and its best number of further
    blocks, ``tail = max over d of (d - 1) (V rest_e + rest_c) + extra[d]``; ``first``, ``alike``
    and ``rest`` are each ``(entropy, flops, params, latency)`` per line, their costs ``_c`` priced
    here as :func:`_cost` prices them (``layers``: the priced layers of a first and of a further
    block), one width's lines at a time, so that a pass reads the space's arrays once and writes
    none (pricing them beforehand in whole arrays made a pass a quarter slower on deepmad-89m).
    ``slope``: ``(flops, params)`` per unit of input width. With ``lat_price != 0`` the lines also carry ``lat_price *
    (lat_units[ai, bi[q // K], q % K] + lat_short[ai, m, q % K])``, evaluated densely."""
    M = len(a_lo)
    G = len(V)
    F = edge_start[M]
    E = np.full((F, G), -np.inf)
    Q = np.full((F, G), -1, dtype=np.int64)
    best = np.full((M, G), -np.inf)
    at = np.full((M, G), -1, dtype=np.int64)
    dense = lat_price != 0.0
    size = 0
    for m in range(M):
        size = max(size, (starts[m + 1] - starts[m]) * K)
    hull = np.empty(size + 1, dtype=np.int64)
    U = np.empty(size)
    A = np.empty(size)
    first_c, alike_c, rest_c, W = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    first_e, first_f, first_p, first_t = first
    alike_e, alike_f, alike_p, alike_t = alike
    rest_e, rest_f, rest_p, rest_t = rest
    slope_f, slope_p = slope
    pf, pp, pt = prices[0], prices[1], prices[2]
    lf, lr = layers
    for m in range(M):
        q0, q1 = starts[m] * K, starts[m + 1] * K
        for i in range(q1 - q0):
            q = q0 + i
            first_c[i] = pf * first_f[q] + pp * first_p[q] + lf
            alike_c[i] = pf * alike_f[q] + pp * alike_p[q] + lf
            rest_c[i] = pf * rest_f[q] + pp * rest_p[q] + lr
            W[i] = pf * slope_f[q] + pp * slope_p[q]
        if pt != 0.0:
            for i in range(q1 - q0):
                q = q0 + i
                first_c[i] += pt * first_t[q]
                alike_c[i] += pt * alike_t[q]
                rest_c[i] += pt * rest_t[q]
        order = _by_slope(W[:q1 - q0], K)
        for g in range(G):
            v = V[g]
            for i in range(q1 - q0):
                q = q0 + i
                tail = _tail(v * rest_e[q] + rest_c[i], slopes, intercepts, breaks)[0]
                U[i] = v * first_e[q] + first_c[i] + tail
                A[i] = v * alike_e[q] + alike_c[i] + tail
            # The upper envelope of the lines (slopes ascending), as offsets into the chunk.
            n = 0
            if not dense:
                for i in order:
                    u = U[i]
                    while n > 0:
                        last = hull[n - 1]
                        if W[i] == W[last]:
                            if u >= U[last]:
                                n -= 1
                                continue
                            break
                        if n >= 2:
                            before = hull[n - 2]
                            if (U[before] - u) * (W[last] - W[before]) <= (U[before] - U[last]) * (W[i] - W[before]):
                                n -= 1
                                continue
                        break
                    if n > 0 and W[i] == W[hull[n - 1]]:
                        continue
                    hull[n] = i
                    n += 1
            ptr = 0
            for ai in range(a_lo[m], a_hi[m]):
                e = edge_start[m] + ai - a_lo[m]
                value, line = -np.inf, -1
                if ai == same[m]:
                    for i in range(q1 - q0):
                        if A[i] > value:
                            value, line = A[i], q0 + i
                elif dense:
                    x = inputs[ai]
                    for i in range(q1 - q0):
                        q = q0 + i
                        w = U[i] + x * W[i] + lat_price * (lat_units[ai, bi[q // K], q % K] + lat_short[ai, m, q % K])
                        if w > value:
                            value, line = w, q
                    value += za[ai, g]
                elif n > 0:
                    x = inputs[ai]
                    while ptr + 1 < n and U[hull[ptr + 1]] + x * W[hull[ptr + 1]] >= U[hull[ptr]] + x * W[hull[ptr]]:
                        ptr += 1
                    line = q0 + hull[ptr]
                    value = U[hull[ptr]] + x * W[hull[ptr]] + za[ai, g]
                E[e, g] = value
                Q[e, g] = line
                total = value + Z[ai, g]
                if total > best[m, g]:
                    best[m, g] = total
                    at[m, g] = ai
    return E, Q, best, at


@njit(cache=True, nogil=True)
def line_depths(lines, V, rest, prices, layers, slopes, intercepts, line_depth, breaks):  # pragma: no cover - compiled
    """The best depth of each line ``lines[e, g]`` at setting ``g`` (-1 where there is none); ``rest``,
    ``prices`` and ``layers`` as for :func:`envelopes`."""
    out = np.full(lines.shape, -1, dtype=np.int64)
    for e in range(lines.shape[0]):
        for g in range(lines.shape[1]):
            q = lines[e, g]
            if q >= 0:
                r = V[g] * rest[0][q] + _cost(rest[1], rest[2], rest[3], q, prices, layers[1])
                out[e, g] = line_depth[_tail(r, slopes, intercepts, breaks)[1]]
    return out


@njit(cache=True, nogil=True)
def above(U, W, alike, za, R, extra, depths, threshold, inputs, a_lo, a_hi, same, starts, K, edge_start, limit,
          lat_units, lat_short, bi, lat_price):  # pragma: no cover - compiled
    """Every option ``(m, ai, q, di)`` whose value ``U[q] + inputs[ai] W[q] + za[ai] + (depths[di] - 1)
    R[q] + extra[di]`` (``alike[q]`` for the first block where ``ai == same[m]``; with the latency
    terms of :func:`envelopes`) is at least ``threshold[edge_start[m] + ai - a_lo[m]]``, as rows of
    an array, and how many there are; past ``limit`` it stops (the count is then ``limit + 1``). ``U`` and
    ``alike`` exclude the depth terms here."""
    found = np.empty((limit, 4), dtype=np.int64)
    count = 0
    M = len(a_lo)
    for m in range(M):
        for ai in range(a_lo[m], a_hi[m]):
            t = threshold[edge_start[m] + ai - a_lo[m]]
            if t == np.inf:
                continue
            x = inputs[ai]
            for q in range(starts[m] * K, starts[m + 1] * K):
                if ai == same[m]:
                    base = alike[q]
                else:
                    base = U[q] + x * W[q] + za[ai]
                    if lat_price != 0.0:
                        base += lat_price * (lat_units[ai, bi[q // K], q % K] + lat_short[ai, m, q % K])
                for di in range(len(depths)):
                    if base + (depths[di] - 1) * R[q] + extra[di] >= t:
                        if count < limit:
                            found[count, 0] = m
                            found[count, 1] = ai
                            found[count, 2] = q
                            found[count, 3] = di
                        count += 1
                        if count > limit:
                            return found, count
    return found[:count], count


@njit(cache=True, nogil=True)
def most_entropy(S_in, emax, layers, a_lo, a_hi, edge_start, n_out):  # pragma: no cover - compiled
    """One stage of the effectiveness feasibility pass: ``S_out[m, D + layers[di]]``, the largest
    entropy of a path that ends at width ``m`` with ``D + layers[di]`` layers, from ``S_in[ai, D]``
    (per input and layer count) and ``emax[e, di]``, the most entropy of an option of edge ``e``
    and depth index ``di``."""
    M = len(a_lo)
    top = S_in.shape[1]
    S_out = np.full((n_out, top), -np.inf)
    for m in range(M):
        for ai in range(a_lo[m], a_hi[m]):
            e = edge_start[m] + ai - a_lo[m]
            for di in range(len(layers)):
                add = emax[e, di]
                if add == -np.inf:
                    continue
                shift = layers[di]
                for D in range(top - shift):
                    s = S_in[ai, D]
                    if s != -np.inf and s + add > S_out[m, D + shift]:
                        S_out[m, D + shift] = s + add
    return S_out


@njit(cache=True, nogil=True)
def undominated(flops, params, latency):  # pragma: no cover - compiled
    """Of options sorted best first (by entropy, then their costs), which no earlier one dominates
    (at most its FLOPs, parameters and latency). Each is held against the ones kept only: an option
    that dominates it and is dominated itself has a kept one before it that dominates both."""
    n = len(flops)
    keep = np.zeros(n, dtype=np.bool_)
    kept = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        free = True
        for c in range(count):
            j = kept[c]
            if flops[j] <= flops[i] and params[j] <= params[i] and latency[j] <= latency[i]:
                free = False
                break
        if free:
            keep[i] = True
            kept[count] = i
            count += 1
    return keep
