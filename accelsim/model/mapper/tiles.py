"""The tiles of each problem dimension the systolic search draws from, with their per-dimension tables:
tile lengths (dominated ones dropped), the pieces the array folds over, footprints, and what a
serpentine walk keeps at either end."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from accelsim.model.mapper.common import Window


#: What :func:`tile_ends` gives of a dimension's tiles, in order.
END_NAMES = ("first", "last", "even", "odd")

#: Dimensions up to this size try every tile length; longer ones drop the dominated lengths.
EVERY_LENGTH_UP_TO = 16


def tile_lengths(size: int, unit: int = 1, side: int | None = None) -> list[int]:
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


def split(size: int, tile: int) -> list[tuple[int, int]]:
    """(length, how many) of the tiles that cover ``size`` by ``tile``: full ones, then the edge."""
    full, edge = divmod(size, tile)
    return [(tile, full)] * bool(full) + [(edge, 1)] * bool(edge)


def chunks(pieces: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """The array folds over tiles of these lengths, ``width`` at a time: (extent, how many)."""
    out: dict[int, int] = {}
    for length, times in pieces:
        for e, c in split(length, width):
            out[e] = out.get(e, 0) + c * times
    return sorted(out.items(), reverse=True)


@dataclass(frozen=True)
class Dim:
    """One tile choice of a problem dimension: its pieces (array extent, how many) and its sums."""

    tile: dict          # the tile per problem axis (b, oy, ox | c | n)
    count: int          # tiles along the dimension
    pieces: tuple       # ((extent the array sees, how many), ...)
    extent: int         # sum of extents (the dimension's size as the array sees it)
    ends: tuple         # :func:`tile_ends` of the tiles' footprint factors (input window rows × cols for pixels)
    ends_px: tuple      # the same of their output pixels (pixels only; else ``ends``)

    @property
    def footprint(self) -> float:
        """The largest tile's footprint factor: the first (full tiles come before the edge)."""
        return self.ends[0]

    @property
    def fetched(self) -> float:
        """Footprint factors summed over the tiles."""
        return self.ends[2] + self.ends[3]


def tile_ends(*factors: list[tuple[float, int]]) -> tuple[float, float, float, float]:
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


def window_span(outputs: int, filt: int, stride: int) -> int:
    """Input rows (or columns) under ``outputs`` consecutive output rows: the windows overlap, or a stride
    longer than the window skips the rows between."""
    return min((outputs - 1) * stride + filt, outputs * filt)


def pixel_dims(w: Window, align: int) -> list[Dim]:
    """Pixel tiles: whole images (batch tiled), whole output rows, pieces of one row, and for a
    pointwise convolution any run of pixels across rows; ``align`` is the array side the pixels lie
    along (OS rows, IS columns), 1 when they stream."""
    side = align if align > 1 else None
    choices = [(b, w.oy, w.ox) for b in tile_lengths(w.batch, w.oy * w.ox, side)]
    choices += [(1, y, w.ox) for y in tile_lengths(w.oy, w.ox, side) if y < w.oy or w.batch > 1]
    choices += [(1, 1, x) for x in tile_lengths(w.ox, 1, side) if x < w.ox and (w.oy > 1 or w.batch > 1)]
    out = []
    for b, y, x in dict.fromkeys(choices):
        sb, sy, sx = split(w.batch, b), split(w.oy, y), split(w.ox, x)
        pieces: dict[int, int] = {}
        for (lb, cb), (ly, cy), (lx, cx) in itertools.product(sb, sy, sx):
            pieces[lb * ly * lx] = pieces.get(lb * ly * lx, 0) + cb * cy * cx
        in_rows = [(window_span(ly, w.fy, w.sy), cy) for ly, cy in sy]
        in_cols = [(window_span(lx, w.fx, w.sx), cx) for lx, cx in sx]
        out.append(Dim({"b": b, "oy": y, "ox": x}, sum(pieces.values()), tuple(sorted(pieces.items(), reverse=True)),
                        w.batch * w.oy * w.ox, tile_ends(sb, in_rows, in_cols), tile_ends(sb, sy, sx)))
    total = w.batch * w.oy * w.ox
    if w.ox > 1 and w.fy == w.fx == 1:
        # A pointwise convolution reads one input pixel per output pixel, so a run of pixels that
        # crosses rows needs exactly its own inputs.
        shapes = {d.tile["b"] * d.tile["oy"] * d.tile["ox"] for d in out}
        for t in (t for t in tile_lengths(total, 1, side) if t not in shapes):
            sp = split(total, t)
            ends = tile_ends(sp)
            out.append(Dim({"pixels": t}, sum(c for _, c in sp), tuple(sp), total, ends, ends))
    return out


def channel_dims(c_size: int, window: int, k_exec_ratio: float, side: int | None) -> list[Dim]:
    """Input-channel tiles; the array sees ``channels·fy·fx`` reduction rows, the kept ones when sparse."""
    out = []
    for t in tile_lengths(c_size, window, side):
        sp = split(c_size, t)
        pieces = tuple((max(1, math.ceil(l * window * k_exec_ratio)), c) for l, c in sp)
        ends = tile_ends(sp)
        out.append(Dim({"c": t}, sum(c for _, c in sp), pieces, sum(e * c for e, c in pieces), ends, ends))
    return out


def filter_dims(n_size: int, side: int | None) -> list[Dim]:
    out = []
    for t in tile_lengths(n_size, 1, side):
        sp = split(n_size, t)
        ends = tile_ends(sp)
        out.append(Dim({"n": t}, sum(c for _, c in sp), tuple(sp), n_size, ends, ends))
    return out
