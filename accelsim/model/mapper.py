"""The mapper: the best mapping of one GEMM or convolution on an arch, by bounded search of its mapspace.

``fixed`` is SCALE-Sim's mapping (:func:`accelsim.model.mapping.map_gemm`, the parity reference);
``search`` enumerates the mapspace the arch allows and keeps the mapping that minimises the
objective (``edp``, ``latency`` or ``energy``) as :func:`accelsim.simulate` prices it.

Systolic arrays (two memory levels: a backing store and a per-operand on-chip buffer). A mapping is
a tile of the problem held on chip — output pixels (batch, rows, columns), input channels and
filters (``m``, ``k``, ``n`` of a GEMM) — the order of the tile loops at the backing store, and the
array's folds over the tile (the dataflow fixes which dimensions the rows and columns hold and
which one streams). Every tile length is in the space; :func:`_tiles` drops only dominated ones. A
convolution stays a convolution: its input tile is the window's footprint,
``((oy−1)·stride + fy)`` rows, so neighbouring outputs share inputs; the array still streams im2col
rows, as SCALE-Sim's does. Sparse operands are searched as they run: an N:M operand's bytes are
its compressed bytes at the levels that store it compressed (so more of it fits), the array folds
over the kept reduction length, and TASD passes whose operands stay on chip move no bytes off it.

Every candidate's traffic, compute cycles and dynamic energy have closed forms, computed for the
whole mapspace at once (NumPy). ``max(compute, load, write-back)`` bounds the engine's cycles from
below, so the candidates are costed by the engine and energy model in order of their bound until
the bound exceeds the best found (branch and bound): the winner's figures are the simulator's own.

Tensor cores: the CTA tile (``m × n × k``, staged twice in the per-SM share of the innermost level),
the split of K over idle SMs and the raster order of the output tiles are searched, each candidate
mapped and costed as ``map_gemm`` maps a configured tile.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from accelsim.errors import ConfigError
from accelsim.model.arch import DTYPE_BYTES, ArchConfig, SystolicCompute
from accelsim.model.energy import action_energy, mapping_actions, price
from accelsim.model.engine import run_mapping
from accelsim.model.mapping import (DENSE_EXEC, Exec, Mapping, TileGroup, map_gemm, map_gemm_tile,
                                    systolic_fold_cycles, systolic_layer_fill)

__all__ = ["MAPPERS", "OBJECTIVES", "Mapper", "Window", "plan_gemm", "search_gemm"]

MAPPERS = ("fixed", "search")
OBJECTIVES = ("edp", "latency", "energy")


@dataclass(frozen=True)
class Mapper:
    """Which mapper runs and what it minimises; ``Mapper()`` is SCALE-Sim's fixed mapping."""

    kind: str = "fixed"
    objective: str = "edp"

    def __post_init__(self):
        if self.kind not in MAPPERS:
            raise ConfigError(f"mapper {self.kind!r}: use one of {', '.join(MAPPERS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")


FIXED = Mapper()


@dataclass(frozen=True)
class Window:
    """A convolution's output pixels and window: ``k = c·fy·fx`` of its im2col GEMM, ``m = batch·oy·ox``."""

    batch: int
    oy: int
    ox: int
    fy: int = 1
    fx: int = 1
    sy: int = 1
    sx: int = 1

    @classmethod
    def gemm(cls, m: int) -> Window:
        return cls(1, m, 1)


def plan_gemm(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int = 1,
              exe: Exec = DENSE_EXEC, mapper: Mapper = FIXED, window: Window | None = None) -> Mapping:
    """The mapping ``mapper`` chooses for ``count`` GEMMs (``window``: the convolution they lower)."""
    if mapper.kind == "fixed":
        return map_gemm(arch, name, m, n, k, dtype, count, exe)
    return search_gemm(arch, name, m, n, k, dtype, count, exe, mapper.objective, window)


#: Searched mappings by (arch, problem, execution, objective), least recently used dropped past
#: CACHE_SIZE: a sweep over many archs keeps its memory bounded, one network's layers all stay.
_CACHE: dict = {}
CACHE_SIZE = 4096


def search_gemm(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int = 1,
                exe: Exec = DENSE_EXEC, objective: str = "edp", window: Window | None = None) -> Mapping:
    """The best mapping by ``objective``; results are cached by (arch, problem, execution, objective)."""
    window = window or Window.gemm(m)
    key = (arch.model_dump_json(), m, n, k, dtype, count, repr(exe), objective, window)
    if key not in _CACHE:
        if isinstance(arch.compute, SystolicCompute):
            _CACHE[key] = _search_systolic(arch, name, m, n, k, dtype, count, exe, objective, window)
        else:
            _CACHE[key] = _search_tensor_core(arch, m, n, k, dtype, count, exe, objective)
        while len(_CACHE) > CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
    _CACHE[key] = found = _CACHE.pop(key)  # the most recently used last (dicts keep insertion order)
    mp = copy.deepcopy(found)
    mp.layer = name
    return mp


def cost(arch: ArchConfig, mp: Mapping) -> tuple[float, float]:
    """(cycles, energy in pJ) of one mapping, as ``simulate`` prices it (leakage included)."""
    cycles = run_mapping(arch, mp).cycles
    actions = mapping_actions(arch, mp)
    actions["leakage.cycle"] = cycles
    return cycles, sum(price(arch, actions).values())


def _key(objective: str, cycles, energy):
    if objective == "latency":
        return cycles, energy
    if objective == "energy":
        return energy, cycles
    return energy * cycles, cycles


# --- systolic arrays -------------------------------------------------------------------------------

#: The array's roles per dataflow: (rows, columns, streamed) over the problem dimensions
#: m (output pixels), k (reduction) and n (filters) — SCALE-Sim's Sr / Sc / T.
_ROLES = {"ws": ("k", "n", "m"), "os": ("m", "n", "k"), "is": ("k", "m", "n")}
_OPERANDS = {"input": ("m", "k"), "weight": ("k", "n"), "output": ("m", "n")}
_IRRELEVANT = {"input": "n", "weight": "m", "output": "k"}


#: What :func:`_ends` gives of a dimension's tiles, in order.
_END_NAMES = ("first", "last", "even", "odd")

#: Dimensions up to this size try every tile length; longer ones drop the dominated lengths.
EVERY_LENGTH_UP_TO = 16


def _tiles(size: int, unit: int = 1, side: int | None = None) -> list[int]:
    """The tile lengths of a dimension worth trying, longest first.

    Every length 1..size is in the mapspace. Past :data:`EVERY_LENGTH_UP_TO` the dominated ones are
    dropped: lengths giving the same number of tiles move the same bytes, and a shorter tile has a
    smaller footprint, so along a streamed dimension only the shortest length per tile count stays,
    and along the array (``side`` rows or columns; a tile spans ``length·unit`` of them) only the
    lengths with fewer folds than every shorter one of the same tile count.
    """
    t = np.arange(1, size + 1)
    if size <= EVERY_LENGTH_UP_TO:
        return sorted(t.tolist(), reverse=True)
    count = -(-size // t)
    if side is None:
        return sorted({int(x) for x in -(-size // np.unique(count))}, reverse=True)
    edge = size - (count - 1) * t
    folds = (count - 1) * -(-(t * unit) // side) + -(-(edge * unit) // side)
    keep, least = [], {}
    for length, c, f in zip(t.tolist(), count.tolist(), folds.tolist()):
        if f < least.get(c, math.inf):
            least[c] = f
            keep.append(length)
    return sorted(keep, reverse=True)


def _split(size: int, tile: int) -> list[tuple[int, int]]:
    """(length, how many) of the tiles that cover ``size`` by ``tile``: full ones, then the edge."""
    full, edge = divmod(size, tile)
    return [(tile, full)] * bool(full) + [(edge, 1)] * bool(edge)


def _chunks(pieces: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """The array folds over tiles of these lengths, ``width`` at a time: (extent, how many)."""
    out: dict[int, int] = {}
    for length, times in pieces:
        for e, c in _split(length, width):
            out[e] = out.get(e, 0) + c * times
    return sorted(out.items(), reverse=True)


@dataclass(frozen=True)
class _Dim:
    """One tile choice of a problem dimension: its pieces (array extent, how many) and its sums."""

    tile: dict          # the tile per problem axis (b, oy, ox | c | n)
    count: int          # tiles along the dimension
    pieces: tuple       # ((extent the array sees, how many), ...)
    extent: int         # sum of extents (the dimension's size as the array sees it)
    footprint: float    # largest tile's footprint factor (input window rows × cols for pixels)
    fetched: float      # footprint factors summed over the tiles
    ends: tuple         # :func:`_ends` of the tiles' footprint factors, in traversal order
    ends_px: tuple      # the same of their output pixels (pixels only; else ``ends``)


def _ends(*factors: list[tuple[float, int]]) -> tuple[float, float, float, float]:
    """(first, last, sum at even positions, sum at odd positions) of the tiles of a dimension whose
    tile volume is the product of ``factors``, each a run-length list (value, how many) in order,
    outermost first: what a serpentine walk keeps on chip when it turns at either end."""
    first = last = total = alt = 1.0
    inner = 1
    for runs in reversed(factors):
        f_total = f_alt = 0.0
        sign = 1.0
        for v, c in runs:
            f_total += v * c
            f_alt += sign * v * (c % 2)
            sign *= (-1.0) ** c
        # a position's parity sums its factors' indices, each weighted by the tiles inside it
        first, last = first * runs[0][0], last * runs[-1][0]
        alt *= f_alt if inner % 2 else f_total
        total *= f_total
        inner *= sum(c for _, c in runs)
    return first, last, (total + alt) / 2, (total - alt) / 2


def _pixel_dims(w: Window, align: int) -> list[_Dim]:
    """Pixel tiles: whole images (batch tiled), whole output rows, pieces of one row, and for a
    pointwise convolution any run of pixels across rows; ``align`` is the array side the pixels lie
    along (OS rows, IS columns), 1 when they stream."""
    rows = lambda t: min((t - 1) * w.sy + w.fy, t * w.fy)   # input rows under t output rows: windows
    cols = lambda t: min((t - 1) * w.sx + w.fx, t * w.fx)   # overlap, or skip rows when stride > window
    side = align if align > 1 else None
    choices = [(b, w.oy, w.ox) for b in _tiles(w.batch, w.oy * w.ox, side)]
    choices += [(1, y, w.ox) for y in _tiles(w.oy, w.ox, side) if y < w.oy or w.batch > 1]
    choices += [(1, 1, x) for x in _tiles(w.ox, 1, side) if x < w.ox and (w.oy > 1 or w.batch > 1)]
    out = []
    for b, y, x in dict.fromkeys(choices):
        sb, sy, sx = _split(w.batch, b), _split(w.oy, y), _split(w.ox, x)
        pieces: dict[int, int] = {}
        for (lb, cb), (ly, cy), (lx, cx) in itertools.product(sb, sy, sx):
            pieces[lb * ly * lx] = pieces.get(lb * ly * lx, 0) + cb * cy * cx
        fetched = w.batch * sum(rows(l) * c for l, c in sy) * sum(cols(l) * c for l, c in sx)
        window_runs = [(lb, cb) for lb, cb in sb], [(rows(ly), cy) for ly, cy in sy], [(cols(lx), cx) for lx, cx in sx]
        out.append(_Dim({"b": b, "oy": y, "ox": x}, sum(pieces.values()), tuple(sorted(pieces.items(), reverse=True)),
                        w.batch * w.oy * w.ox, float(b * rows(y) * cols(x)), float(fetched),
                        _ends(*window_runs), _ends(sb, sy, sx)))
    total = w.batch * w.oy * w.ox
    if w.ox > 1 and w.fy == w.fx == 1:
        # A pointwise convolution reads one input pixel per output pixel, so a run of pixels that
        # crosses rows needs exactly its own inputs.
        shapes = {d.tile["b"] * d.tile["oy"] * d.tile["ox"] for d in out}
        for t in (t for t in _tiles(total, 1, side) if t not in shapes):
            sp = _split(total, t)
            out.append(_Dim({"pixels": t}, sum(c for _, c in sp), tuple(sp), total, float(t), float(total),
                            _ends(sp), _ends(sp)))
    return out


def _channel_dims(c_size: int, window: int, k_exec_ratio: float, side: int | None) -> list[_Dim]:
    """Input-channel tiles; the array sees ``channels·fy·fx`` reduction rows, the kept ones when sparse."""
    out = []
    for t in _tiles(c_size, window, side):
        sp = _split(c_size, t)
        pieces = tuple((max(1, math.ceil(l * window * k_exec_ratio)), c) for l, c in sp)
        out.append(_Dim({"c": t}, sum(c for _, c in sp), pieces, sum(e * c for e, c in pieces),
                        float(t), float(c_size), _ends(sp), _ends(sp)))
    return out


def _filter_dims(n_size: int, side: int | None) -> list[_Dim]:
    out = []
    for t in _tiles(n_size, 1, side):
        sp = _split(n_size, t)
        out.append(_Dim({"n": t}, sum(c for _, c in sp), tuple(sp), n_size, float(t), float(n_size), _ends(sp), _ends(sp)))
    return out


def _search_systolic(arch: ArchConfig, name: str, m, n, k, dtype, count, exe: Exec, objective: str,
                     w: Window) -> Mapping:
    c = arch.compute
    if len(arch.memory) != 2:
        raise ConfigError(f"arch {arch.name!r}: the mapper searches systolic arrays with two memory levels "
                          f"(backing store and on-chip buffer); this one has {len(arch.memory)}")
    outer, inner = arch.memory
    eb = DTYPE_BYTES[dtype]
    window = w.fy * w.fx
    c_size = k // window
    row, col, stream = _ROLES[c.dataflow]
    side = {row: c.rows, col: c.cols}
    k_run = exe.k_exec or k
    dims = {
        "m": _pixel_dims(w, side.get("m", 1)),
        "k": _channel_dims(c_size, window, k_run / k, side.get("k")),
        "n": _filter_dims(n, side.get("n")),
    }
    axes = ("m", "k", "n")

    def per_dim(attr, a):
        return np.asarray([getattr(d, attr) for d in dims[a]], dtype=float)

    def scale(level, op):
        return exe.stored.get(op, 1.0) if level.name in exe.compressed_levels else 1.0

    # Which tiles fit, decided per pair of dimensions before the grid is built: each operand's tile
    # spans two of them (the output's pixels are its first piece; the weight spans the window too).
    fp = {a: per_dim("footprint", a) for a in axes}
    first_px = np.asarray([d.pieces[0][0] for d in dims["m"]], float)
    cap = {op: inner.capacity_for(op) / (eb * scale(inner, op)) for op in _OPERANDS}
    ok_mk = np.outer(fp["m"], fp["k"]) <= cap["input"]
    ok_kn = np.outer(fp["k"] * window, fp["n"]) <= cap["weight"]
    ok_mn = np.outer(first_px, fp["n"]) <= cap["output"]
    fits = ok_mk[:, :, None] & ok_kn[None, :, :] & ok_mn[:, None, :]
    if not fits.any():
        raise ConfigError(f"arch {arch.name!r}: no tile of layer {name!r} fits the on-chip buffer "
                          f"({', '.join(f'{op} {inner.capacity_for(op):g} B' for op in _OPERANDS)}); "
                          f"--mapper fixed streams what does not fit")
    # Only the tiles that fit go on, as index triples into the per-dimension tables below.
    idx = dict(zip(axes, np.nonzero(fits)))
    # The folds by shape: (extent, how many) per dimension — the array's chunks of each tile along
    # its rows and columns, the tiles themselves along the streamed dimension. The engine fills
    # before the first fold (largest extents) and drains after the last (smallest), each moving bytes
    # in proportion to its MACs. Every figure is tabulated per dimension and gathered only for the
    # candidates that need it: all of them for the order-free bound, the survivors for the rest.
    chunk = {a: [_chunks(list(d.pieces), side[a]) if a in side else list(d.pieces) for d in dims[a]] for a in axes}
    table = {a: {"count": per_dim("count", a), "extent": per_dim("extent", a), "fetched": per_dim("fetched", a),
                 "folds": np.asarray([sum(n_ for _, n_ in ch) for ch in chunk[a]], float),
                 "first": np.asarray([ch[0][0] for ch in chunk[a]], float),
                 "last": np.asarray([ch[-1][0] for ch in chunk[a]], float)} for a in axes}
    for a in axes:
        for view, attr in (("v", "ends"), ("p", "ends_px")):
            ends = np.asarray([getattr(d, attr) for d in dims[a]], float)
            table[a].update({view + end: ends[:, i] for i, end in enumerate(_END_NAMES)})
    # Fold cycles along the stream: all of a tile's folds, its first and its last one; the layer's one
    # fill and drain (double-buffered PEs) comes on top.
    fold = functools.partial(systolic_fold_cycles, c)
    table[stream].update({
        "per_stream": np.asarray([sum(n_ * fold(e) for e, n_ in ch) for ch in chunk[stream]], float),
        "fold_first": np.asarray([fold(ch[0][0]) for ch in chunk[stream]], float),
        "fold_last": np.asarray([fold(ch[-1][0]) for ch in chunk[stream]], float)})
    layer_fill = sum(g.total_cycles for g in systolic_layer_fill(c))

    dense = {"m": float(m), "k": float(k), "n": float(n)}
    size_out = float(m * n) * eb * count
    leak = arch.energy.leakage_pj_per_cycle
    mac_e = float(m * n * k_run * count) * arch.energy.mac_pj[dtype] + sum(
        v * action_energy(arch, a) for a, v in exe.actions.items())
    partial_out = "output" not in exe.stationary

    def gather(sel, *names) -> dict:
        """``names`` of candidates ``sel`` (None: all), with the compute cycles, the array's traffic per
        operand (every fold moves its slice; im2col rows for the input) and the volumes fetched."""
        at = {a: idx[a] if sel is None else idx[a][sel] for a in axes}
        g = {(nm, a): table[a][nm][at[a]] for nm in ("folds", *names) for a in axes if nm in table[a]}
        folds = {a: g["folds", a] for a in axes}
        g["compute"] = folds[row] * folds[col] * table[stream]["per_stream"][at[stream]] * count + layer_fill
        for op, ds in _OPERANDS.items():
            g["array", op] = math.prod(dense[a] if a in ds else folds[a] for a in axes) * (eb * count)
        g["fetched", "input"] = table["m"]["fetched"][at["m"]] * table["k"]["fetched"][at["k"]] * (eb * count)
        g["fetched", "weight"], g["fetched", "output"] = float(k * n) * eb * count, size_out
        return g

    unit = {"input": eb * count, "weight": eb * count * window, "output": eb * count}

    def kept(order, op, g):
        """Elements of ``op`` a serpentine walk keeps on chip where the loop over the dimension it
        does not depend on steps: the loops inside it turn back, so the tile in use is used next.
        At a turn they stand at their last tile after a forward pass and their first after a
        backward one; a loop's direction is the parity of the steps of the loops outside it."""
        irr = _IRRELEVANT[op]
        at = order.index(irr)
        if at == 2:
            return 0.0
        end = lambda a, e: g[("p" if op == "output" else "v") + e, a]
        turns = g["count", irr] - 1
        fwd, back = np.ceil(turns / 2), np.floor(turns / 2)
        if at == 0:
            a, b = order[1:]
            return np.where(g["count", a] % 2 == 0, end(b, "first") * (fwd * end(a, "last") + back * end(a, "first")),
                            fwd * end(a, "last") * end(b, "last") + back * end(a, "first") * end(b, "first"))
        a, b = order[0], order[2]
        same = fwd * end(b, "last") + back * end(b, "first")
        flipped = fwd * end(b, "first") + back * end(b, "last")
        return np.where(turns % 2, (end(a, "even") + end(a, "odd")) * same,
                        end(a, "even") * same + end(a, "odd") * flipped)

    def closed_forms(order, g, size):
        """Traffic per level and operand, and the bound on the objective, of ``size`` candidates
        gathered in ``g``, in one loop order."""
        rd = {lvl.name: {} for lvl in arch.memory}
        wr = {lvl.name: {} for lvl in arch.memory}
        saved = {}
        for op, ds in _OPERANDS.items():
            # Backing-store fetches: a tile is fetched again when a loop over a dimension it does
            # not depend on sits outside a loop (of more than one trip) over one it does.
            irr = _IRRELEVANT[op]
            refetch = np.zeros(size, dtype=bool)
            for a in order[order.index(irr) + 1:]:
                if a in ds:
                    refetch |= g["count", a] > 1
            saved[op] = 0.0 if op in exe.stationary else np.where(refetch, kept(order, op, g) * unit[op], 0.0)
            moved = 0.0 if op in exe.stationary else np.where(
                refetch, g["fetched", op] * g["count", irr], g["fetched", op]) - saved[op]
            if op == "output":
                # Evicted partial sums go out and come back; the last write is the result.
                back = moved - size_out if partial_out else 0.0
                wr[outer.name][op], rd[outer.name][op] = moved, back
                wr[inner.name][op] = g["array", op] + back
                rd[inner.name][op] = g["array", op] - size_out + moved
            else:
                rd[outer.name][op], wr[outer.name][op] = moved * scale(outer, op), 0.0
                wr[inner.name][op] = moved * scale(inner, op)
                rd[inner.name][op] = g["array", op] * scale(inner, op)
        load = store = 0.0
        for l in arch.memory:
            load = np.maximum(load, (rd[l.name]["input"] + rd[l.name]["weight"]) / l.bandwidth)
            store = np.maximum(store, (wr[l.name]["output"] + rd[l.name]["output"]) / (l.write_bandwidth or l.bandwidth))
        total_macs = g["extent", row] * g["extent", col] * g["extent", stream] * count
        fill = load * (g["first", row] * g["first", col] * g["first", stream] / total_macs)
        drain = store * (g["last", row] * g["last", col] * g["last", stream] / total_macs)
        compute = g["compute"]
        # the last fold's store overlaps the layer's one fill (a tile of no bytes after it)
        cyc = np.maximum(np.maximum(compute, load + g["fold_last", stream] + drain),
                         np.maximum(fill + compute - layer_fill + np.maximum(drain, layer_fill),
                                    fill + g["fold_first", stream] + store))
        dyn = mac_e + sum(rd[l.name][op] * l.read_pj_per_byte + wr[l.name][op] * l.write_pj_per_byte
                          for l in arch.memory for op in _OPERANDS)
        full = lambda d: {l: {op: np.broadcast_to(v, (size,)) for op, v in ops.items()} for l, ops in d.items()}
        kept_out = {op: np.broadcast_to(v * scale(outer, op), (size,)) for op, v in saved.items()}
        return full(rd), full(wr), _key(objective, cyc, dyn + leak * cyc)[0], kept_out

    # A bound that holds in every loop order (each operand fetched once), to drop most candidates
    # before the per-order forms: every order of the first few candidates gives an incumbent.
    g0 = gather(None)
    compute = g0["compute"]
    dyn0 = mac_e + sum(g0["array", op] * scale(inner, op) * inner.read_pj_per_byte for op in ("input", "weight"))
    dyn0 = dyn0 + sum(0.0 if op in exe.stationary else g0["fetched", op] * (scale(outer, op) * outer.read_pj_per_byte
                                                                           + scale(inner, op) * inner.write_pj_per_byte)
                      for op in ("input", "weight"))
    out_once = 0.0 if "output" in exe.stationary else size_out
    dyn0 = dyn0 + out_once * (outer.write_pj_per_byte + inner.read_pj_per_byte) + g0["array", "output"] * (
        inner.write_pj_per_byte + inner.read_pj_per_byte) - size_out * inner.read_pj_per_byte
    lb0 = _key(objective, compute, dyn0 + leak * compute)[0]
    del g0, compute, dyn0

    orders = list(itertools.permutations(axes))
    best = None
    costed: dict = {}

    def search(sel):
        """Branch and bound over candidates ``sel`` in every order, from the incumbent ``best``."""
        nonlocal best
        g = gather(sel, "count", "extent", "first", "last", "fold_first", "fold_last",
                   *(view + end for view in "vp" for end in _END_NAMES))
        forms = [closed_forms(o, g, len(sel)) for o in orders]
        bound = np.concatenate([f[2] for f in forms])
        below = np.flatnonzero(bound < best[0][0]) if best is not None else np.arange(bound.size)
        for j in below[np.argsort(bound[below], kind="stable")]:
            if best is not None and bound[j] >= best[0][0]:
                break
            o, local = divmod(int(j), len(sel))
            i = int(sel[local])
            reads = {l: {op: float(v[local]) for op, v in ops.items()} for l, ops in forms[o][0].items()}
            writes = {l: {op: float(v[local]) for op, v in ops.items()} for l, ops in forms[o][1].items()}
            # Candidates alike in folds and traffic (a loop order among one-trip loops, tiles that
            # fold the same way) cost the same: the engine runs once for each.
            same = (tuple(tuple(chunk[a][idx[a][i]]) for a in (row, col, stream)),
                    tuple((l, op, v) for l, ops in reads.items() for op, v in ops.items()),
                    tuple((l, op, v) for l, ops in writes.items() for op, v in ops.items()))
            if same in costed:
                continue
            mp = _build_systolic(arch, orders[o], {a: dims[a][idx[a][i]] for a in axes},
                                 {a: chunk[a][idx[a][i]] for a in axes}, m, n, k, dtype, count, exe, reads, writes, w)
            kept_bytes = {op: float(v[local]) for op, v in forms[o][3].items() if v[local]}
            if kept_bytes:  # what the serpentine walk did not fetch again, in backing-store bytes
                mp.nest["nest"][0]["kept"] = kept_bytes
            costed[same] = key = _key(objective, *cost(arch, mp))
            if best is None or key < best[0]:
                best = (key, mp)

    search(_smallest(lb0, 16))
    search(np.flatnonzero(lb0 < best[0][0]))
    return best[1]


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` least values, ties by index: ``argsort(kind="stable")[:count]`` without
    sorting them all."""
    if values.size <= count:
        return np.argsort(values, kind="stable")
    cut = np.partition(values, count - 1)[count - 1]
    pick = np.flatnonzero(values <= cut)
    return pick[np.argsort(values[pick], kind="stable")][:count]


def _build_systolic(arch, order, choice: dict, folds: dict, m, n, k, dtype, count, exe: Exec, reads, writes,
                    w: Window) -> Mapping:
    """The Mapping (fold groups in a fixed order, traffic per level) of one systolic candidate;
    ``folds`` are its (extent, how many) per dimension, as the search tabulated them."""
    c = arch.compute
    row, col, stream = _ROLES[c.dataflow]
    groups, slots = [], 0
    for (er, nr), (ec, nc), (es, ns) in itertools.product(folds[row], folds[col], folds[stream]):
        cycles = systolic_fold_cycles(c, es)
        groups.append(TileGroup(nr * nc * ns * count, float(cycles), float(er * ec * es)))
        slots += nr * nc * ns * count * es
    k_run = exe.k_exec or k
    dense_macs = float(m * n * k * count)
    run_macs = sum(g.total_macs for g in groups)
    groups = [g.scaled(macs=lambda x: x * dense_macs / run_macs) for g in groups] + systolic_layer_fill(c)
    eff = float(m * n * k_run * count) / (c.rows * c.cols * slots)
    tile = {"m": choice["m"].pieces[0][0], "n": choice["n"].tile["n"], "k": choice["k"].tile["c"] * w.fy * w.fx}
    mp = Mapping(layer="", m=m, n=n, k=k, dtype=dtype, tile=tile, loop_order=tuple(order), groups=groups,
                 mapping_efficiency=eff, macs=dense_macs, effectual_macs=dense_macs * exe.effectual,
                 reads=reads, writes=writes, issued_macs=float(m * n * k_run * count), actions=dict(exe.actions))
    mp.nest = _systolic_nest(arch, order, choice, w, m, n, k)
    if count > 1:
        mp.nest["problem"]["count"] = count
    return mp


def _systolic_nest(arch, order, choice: dict, w: Window, m, n, k) -> dict:
    """The mapping as a loop nest a reader can follow (outermost level first, loops outer → inner)."""
    c = arch.compute
    row, col, stream = _ROLES[c.dataflow]
    side = {row: c.rows, col: c.cols}
    pix, ch = choice["m"].tile, choice["k"].tile["c"]
    conv = (w.fy, w.fx, w.ox, w.batch) != (1, 1, 1, 1)
    if conv:
        pixels = [("pixels", w.batch * w.oy * w.ox, pix["pixels"])] if "pixels" in pix else [
            ("b", w.batch, pix["b"]), ("oy", w.oy, pix["oy"]), ("ox", w.ox, pix["ox"])]
        names = {"m": pixels,
                 "k": [("c", k // (w.fy * w.fx), ch)], "n": [("kout", n, choice["n"].tile["n"])]}
        problem = {"kind": "conv", "dims": {"b": w.batch, "oy": w.oy, "ox": w.ox, "c": k // (w.fy * w.fx),
                                            "kout": n, "fy": w.fy, "fx": w.fx}, "stride": [w.sy, w.sx]}
    else:
        names = {"m": [("m", m, pix.get("oy", pix.get("pixels")))], "k": [("k", k, ch)], "n": [("n", n, choice["n"].tile["n"])]}
        problem = {"kind": "gemm", "dims": {"m": m, "n": n, "k": k}}
    outer_loops = [[nm, -(-size // t)] for a in order for nm, size, t in names[a] if size > t]
    tile_of = {a: choice[a].pieces[0][0] for a in ("m", "k", "n")}
    inner_loops = []
    for a in (col, row):
        nm = names[a][0][0] if a != "m" else "m"
        if conv and a == "k" and ch % side[a] == 0:
            inner_loops += [["fy", w.fy], ["fx", w.fx], ["c", ch // side[a]]]
        else:
            inner_loops.append([nm, math.ceil(tile_of[a] / side[a])])
    return {"problem": problem, "nest": [
        {"level": arch.memory[0].name, "loops": outer_loops, "walk": "serpentine"},
        {"level": arch.memory[1].name, "tile": {nm: t for a in ("m", "k", "n") for nm, _, t in names[a]},
         "loops": inner_loops},
        {"level": "array", "spatial": [[row, c.rows], [col, c.cols]], "loops": [[stream, tile_of[stream]]]},
    ]}


# --- tensor cores ----------------------------------------------------------------------------------

_CTA_SIDES = (64, 128, 256)
_CTA_K = (32, 64, 128)


def _search_tensor_core(arch: ArchConfig, m, n, k, dtype, count, exe: Exec, objective: str) -> Mapping:
    c = arch.compute
    smem = arch.memory[-1]
    per_unit = smem.capacity_bytes / c.units if smem.capacity_bytes else math.inf
    eb = DTYPE_BYTES[dtype]
    tiles = {(c.tile_m, c.tile_n, c.tile_k), *map(tuple, c.tile_options)}
    for tm, tn, tk in itertools.product(_CTA_SIDES, _CTA_SIDES, _CTA_K):
        stage = (tm * tk * exe.stored.get("input", 1.0) + tk * tn * exe.stored.get("weight", 1.0)) * eb
        if 2 * stage <= per_unit:
            tiles.add((tm, tn, tk))
    best = None
    for tile in sorted(tiles):
        kt = math.ceil((exe.k_exec or k) / tile[2])
        ctas = math.ceil(m / tile[0]) * math.ceil(n / tile[1]) * count
        # The library heuristic's split (None) and the powers of two that keep every CTA on an SM.
        splits = [None, 1, *(s for s in (2, 4, 8, 16) if s <= kt and ctas * s <= c.units)]
        for split, order in itertools.product(splits, (("m", "n", "k"), ("n", "m", "k"))):
            mp = map_gemm_tile(arch, "", m, n, k, dtype, count, exe, tile, split, order)
            key = _key(objective, *cost(arch, mp))
            if best is None or key < best[0]:
                best = (key, mp)
    mp = best[1]
    mp.nest = {"problem": {"kind": "gemm", "dims": {"m": m, "n": n, "k": k, "count": count}}, "nest": [
        {"level": "grid", "loops": [[d, math.ceil({"m": m, "n": n, "k": exe.k_exec or k}[d] / mp.tile[d])]
                                    for d in mp.loop_order], "split_k": mp.tile.get("split_k", 1)},
        {"level": "cta", "tile": {d: mp.tile[d] for d in ("m", "n", "k")}},
    ]}
    return mp
