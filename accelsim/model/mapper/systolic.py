"""The systolic search: tiles, loop order and folds of one GEMM or convolution on a two-level array.

A mapping is a tile of the problem held on chip — output pixels (batch, rows, columns), input
channels and filters (``m``, ``k``, ``n`` of a GEMM) — the order of the tile loops at the backing
store, walked serpentine, and the array's folds over the tile (the dataflow fixes which dimensions
the rows and columns hold and which one streams). Every tile length is in the space;
:func:`~accelsim.model.mapper.tiles.tile_lengths` drops only dominated ones. A convolution stays a
convolution: its input tile is the window's footprint, ``((oy−1)·stride + fy)`` rows, so
neighbouring outputs share inputs; the array still streams im2col rows, as SCALE-Sim's does. Sparse
operands are searched as they run: an N:M operand's bytes are its compressed bytes at the levels
that store it compressed (so more of it fits), the array folds over the kept reduction length, and
TASD passes whose operands stay on chip move no bytes off it.

Every candidate's traffic, compute cycles and dynamic energy have closed forms, computed for the
whole mapspace at once (NumPy). ``max(compute, load, write-back)`` bounds the engine's cycles from
below, so the candidates are costed by the engine and energy model in order of their bound until
the bound exceeds the best found (branch and bound): the winner's figures are the simulator's own.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from accelsim.errors import ConfigError
from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.model.energy import action_energy
from accelsim.model.mapper.common import Window, cost, rank
from accelsim.model.mapper.tiles import (END_NAMES, channel_dims, chunks, filter_dims, pixel_dims)
from accelsim.model.mapping import Exec, Mapping, TileGroup, systolic_fold_cycles, systolic_layer_fill

#: The array's roles per dataflow: (rows, columns, streamed) over the problem dimensions
#: m (output pixels), k (reduction) and n (filters) — SCALE-Sim's Sr / Sc / T.
_ROLES = {"ws": ("k", "n", "m"), "os": ("m", "n", "k"), "is": ("k", "m", "n")}
_OPERANDS = {"input": ("m", "k"), "weight": ("k", "n"), "output": ("m", "n")}
_IRRELEVANT = {"input": "n", "weight": "m", "output": "k"}


def search(arch: ArchConfig, name: str, m, n, k, dtype, count, exe: Exec, objective: str, w: Window) -> Mapping:
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
        "m": pixel_dims(w, side.get("m", 1)),
        "k": channel_dims(c_size, window, k_run / k, side.get("k")),
        "n": filter_dims(n, side.get("n")),
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
    ok = {"input": (np.outer(fp["m"], fp["k"]) <= cap["input"])[:, :, None],
          "weight": (np.outer(fp["k"] * window, fp["n"]) <= cap["weight"])[None, :, :],
          "output": (np.outer(first_px, fp["n"]) <= cap["output"])[:, None, :]}
    # Operands the buffer lets around it may stream between the backing store and the array instead
    # (every fold moves its slice off chip); an operand a previous pass left on chip stays there.
    around = [op for op in inner.bypass if op not in exe.stationary]
    choices = [frozenset(b) for r in range(len(around) + 1) for b in itertools.combinations(around, r)]
    grid = np.ones([len(dims[a]) for a in axes], dtype=bool)
    fitting = {b: functools.reduce(np.logical_and, [ok[op] for op in _OPERANDS if op not in b], grid) for b in choices}
    if not any(f.any() for f in fitting.values()):
        raise ConfigError(f"arch {arch.name!r}: no tile of layer {name!r} fits the on-chip buffer "
                          f"({', '.join(f'{op} {inner.capacity_for(op):g} B' for op in _OPERANDS)}); "
                          f"--mapper fixed streams what does not fit")
    # The folds by shape: (extent, how many) per dimension — the array's chunks of each tile along
    # its rows and columns, the tiles themselves along the streamed dimension. The engine fills
    # before the first fold (largest extents) and drains after the last (smallest), each moving bytes
    # in proportion to its MACs. Every figure is tabulated per dimension and gathered only for the
    # candidates that need it: all of them for the order-free bound, the survivors for the rest.
    chunk = {a: [chunks(list(d.pieces), side[a]) if a in side else list(d.pieces) for d in dims[a]] for a in axes}
    table = {a: {"count": per_dim("count", a), "extent": per_dim("extent", a), "fetched": per_dim("fetched", a),
                 "folds": np.asarray([sum(n_ for _, n_ in ch) for ch in chunk[a]], float),
                 "first": np.asarray([ch[0][0] for ch in chunk[a]], float),
                 "last": np.asarray([ch[-1][0] for ch in chunk[a]], float)} for a in axes}
    for a in axes:
        for view, attr in (("v", "ends"), ("p", "ends_px")):
            ends = np.asarray([getattr(d, attr) for d in dims[a]], float)
            table[a].update({view + end: ends[:, i] for i, end in enumerate(END_NAMES)})
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

    def gather(idx, sel, *names) -> dict:
        """``names`` of candidates ``sel`` (None: all) of the tiles ``idx``, with the compute cycles, the
        array's traffic per operand (every fold moves its slice; im2col rows for the input) and the
        volumes fetched."""
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

    def closed_forms(order, g, size, bypass):
        """Traffic per level and operand, the bound on the objective and the bytes the serpentine walk
        keeps, of ``size`` candidates gathered in ``g``, in one loop order, ``bypass`` going around the
        buffer."""
        rd = {lvl.name: {} for lvl in arch.memory}
        wr = {lvl.name: {} for lvl in arch.memory}
        saved = {}
        for op in bypass:
            # Every fold moves its slice between the backing store and the array (partial sums too).
            arr, saved[op] = g["array", op], 0.0
            rd[inner.name][op] = wr[inner.name][op] = 0.0
            if op == "output":
                wr[outer.name][op], rd[outer.name][op] = arr, arr - size_out
            else:
                rd[outer.name][op], wr[outer.name][op] = arr * scale(outer, op), 0.0
        for op, ds in ((op, ds) for op, ds in _OPERANDS.items() if op not in bypass):
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
        return full(rd), full(wr), rank(objective, cyc, dyn + leak * cyc)[0], kept_out

    def order_free_bound(idx, bypass):
        """A bound that holds in every loop order (each operand fetched once), to drop most candidates
        before the per-order forms."""
        g0 = gather(idx, None)
        dyn = mac_e
        for op in ("input", "weight"):
            if op in bypass:
                dyn = dyn + g0["array", op] * scale(outer, op) * outer.read_pj_per_byte
                continue
            dyn = dyn + g0["array", op] * scale(inner, op) * inner.read_pj_per_byte
            if op not in exe.stationary:
                dyn = dyn + g0["fetched", op] * (scale(outer, op) * outer.read_pj_per_byte
                                                 + scale(inner, op) * inner.write_pj_per_byte)
        arr = g0["array", "output"]
        if "output" in bypass:
            dyn = dyn + arr * outer.write_pj_per_byte + (arr - size_out) * outer.read_pj_per_byte
        else:
            out_once = 0.0 if "output" in exe.stationary else size_out
            dyn = dyn + out_once * (outer.write_pj_per_byte + inner.read_pj_per_byte) + arr * (
                inner.write_pj_per_byte + inner.read_pj_per_byte) - size_out * inner.read_pj_per_byte
        return rank(objective, g0["compute"], dyn + leak * g0["compute"])[0]

    orders = list(itertools.permutations(axes))
    best = None
    costed: dict = {}

    def search(idx, bypass, sel):
        """Branch and bound over candidates ``sel`` of the tiles ``idx`` in every order, from the
        incumbent ``best``."""
        nonlocal best
        g = gather(idx, sel, "count", "extent", "first", "last", "fold_first", "fold_last",
                   *(view + end for view in "vp" for end in END_NAMES))
        forms = [closed_forms(o, g, len(sel), bypass) for o in orders]
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
            if bypass:
                mp.nest["nest"][1]["bypass"] = sorted(bypass)
            costed[same] = key = rank(objective, *cost(arch, mp))
            if best is None or key < best[0]:
                best = (key, mp)

    # Only the tiles that fit go on, as index triples into the per-dimension tables; every choice of
    # operands around the buffer gives an incumbent from its first few candidates, then the rest.
    spaces = [(b, dict(zip(axes, np.nonzero(f)))) for b, f in fitting.items() if f.any()]
    bounds = [order_free_bound(idx, b) for b, idx in spaces]
    for (b, idx), lb in zip(spaces, bounds):
        search(idx, b, _smallest(lb, 16))
    for (b, idx), lb in zip(spaces, bounds):
        search(idx, b, np.flatnonzero(lb < best[0][0]))
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
