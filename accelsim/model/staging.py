"""SCALE-Sim's memory staging under the fixed systolic mapping: stalls from double-buffered SRAM halves.

SCALE-Sim v3 (USER bandwidth mode) runs every operand through its own SRAM split into an active and a
prefetch half, each fed by its own DRAM interface. The array issues one demand line per cycle; a
line waits when an operand it reads is outside the active window or when the output buffer is full.
This module replays that per demand line, with the fold geometry of
:func:`accelsim.model.mapping.systolic_fold_cycles`; the mechanisms and their numbers are in
docs/scalesim_timing.md §9. Lines between events cost nothing extra, so only the lines where a
window moves or the output buffer drains are stepped through.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["BufferSpec", "ConvWindow", "SystolicStaging", "staged_cycles"]

#: SCALE-Sim's read buffers hash their fetch order into sets of 1 % of the SRAM (its lookup granularity).
SETS_PER_BUFFER = 100
#: Cycles between a DRAM request and its data (SCALE-Sim's read port without a DRAM trace).
READ_LATENCY = 1
#: Folds stepped through per layer; beyond, the stall rate is extrapolated (bounded cost).
MAX_FOLDS = 4096


@dataclass(frozen=True)
class SystolicStaging:
    """The fold geometry SCALE-Sim stages data by: ``copies`` runs of an m×n×k GEMM on the array.

    ``k`` is the executed reduction length (compressed for N:M weights, as SCALE-Sim compresses them).
    """

    rows: int
    cols: int
    dataflow: str
    m: int
    n: int
    k: int
    copies: int = 1
    window: ConvWindow | None = None


@dataclass(frozen=True)
class ConvWindow:
    """A conv layer's im2col input: its rows repeat ifmap words (windows overlap) and past the edge
    hold no word at all (SCALE-Sim's rounded-up output size), which moves every later word in the
    fetch order and lets a demand hit on an earlier copy."""

    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    stride_h: int
    stride_w: int
    keep: tuple[int, int] | None = None

    @property
    def repeats_or_skips(self) -> bool:
        """Whether im2col repeats a word (windows overlap) or reads past the edge; if not, its words
        are distinct and complete and the conv stages like a GEMM."""
        return self.keep is not None or (self.filt_h > self.stride_h or self.filt_w > self.stride_w
                or (self.ifmap_h - self.filt_h) % self.stride_h != 0 or (self.ifmap_w - self.filt_w) % self.stride_w != 0)

    def words(self, i, j):
        """Ifmap word read by im2col row ``i`` (output pixel), column ``j`` (window offset); -1 past the edge.
        The word is a per-row base plus a per-column offset, so both are tabulated once. With ``keep``
        = (n, m) (N:M weights compressed along K) column ``j`` is the j-th kept one: the first n of
        every m."""
        f = -(-(self.ifmap_w - self.filt_w) // self.stride_w) + 1
        orow, ocol = np.divmod(np.arange(int(i.max()) + 1), f)
        cols = np.arange(int(j.max()) + 1)
        if self.keep is not None:
            n, m = self.keep
            cols = cols // n * m + cols % n
        frow, rest = np.divmod(cols, self.filt_w * self.channels)
        fcol, ch = np.divmod(rest, self.channels)
        row0, col0 = orow * self.stride_h, ocol * self.stride_w
        word = ((row0 * self.ifmap_w + col0) * self.channels)[i] + ((frow * self.ifmap_w + fcol) * self.channels + ch)[j]
        ok = (row0[i] + frow[j] < self.ifmap_h) & (col0[i] + fcol[j] < self.ifmap_w)
        return np.where(ok, word, -1)


@dataclass(frozen=True)
class BufferSpec:
    """One operand's SRAM (words) and its DRAM interface (words per cycle)."""

    words: int
    bandwidth: float


def _g(x, w):
    """Σ_{j=1..x} min(j, w) for integers or integer arrays ``x`` (0 where x ≤ 0)."""
    if isinstance(x, int):
        x = max(x, 0)
        return x * (x + 1) // 2 if x <= w else w * (w + 1) // 2 + (x - w) * w
    x = np.maximum(x, 0)
    return np.where(x <= w, x * (x + 1) // 2, w * (w + 1) // 2 + (x - w) * w)


class _Order:
    """The order an operand is fetched in: blocks of ``block_rows`` × ``width`` stacked, the last block
    ``last_width`` wide; read along anti-diagonals (``diag``) or row by row. Only real elements count."""

    def __init__(self, diag: bool, block_rows: int, blocks: int, width: int, last_width: int, words=None):
        self.diag, self.width, self.last_width = diag, width, last_width
        self.y0 = (blocks - 1) * block_rows          # first row of the last block
        self.rows = blocks * block_rows
        self.elements = self.y0 * width + block_rows * last_width
        self.words = None                          # the words in fetch order, when they repeat or skip
        if words is not None:
            self._explicit(words)

    def _explicit(self, words) -> None:
        """Positions from the words themselves (``words(y, c)``, -1 = none): holes take no position."""
        y, c = np.meshgrid(np.arange(self.rows), np.arange(self.width), indexing="ij")
        cell = c < np.where(y >= self.y0, self.last_width, self.width)
        y, c = y[cell], c[cell]
        slot = self.pos(y, c)                  # position were there no holes
        word = np.empty(len(slot), dtype=np.int64)
        word[slot] = words(y, c)
        real = word >= 0
        rank = np.cumsum(real) - 1
        grid = np.full((self.rows, self.width), -1, dtype=np.int64)
        grid[y, c] = np.where(real[slot], rank[slot], -1)
        self.rank = grid
        self.words = word[real]
        self.elements = len(self.words)
        self.copies = np.argsort(self.words, kind="stable")     # positions grouped by word, in order
        first = np.r_[True, np.diff(self.words[self.copies]) != 0]
        self.group = np.empty(self.elements, dtype=np.int64)
        self.group[self.copies] = np.cumsum(first) - 1

    def pos(self, y, c):
        """Fetch position of element (row ``y``, column ``c``) among the real elements (-1: a hole)."""
        if self.words is not None:
            return self.rank[y, c]
        w, w1, y0 = self.width, self.last_width, self.y0
        lo_, hi_ = (min, max) if isinstance(y, int) and isinstance(c, int) else (np.minimum, np.maximum)
        if not self.diag:
            return lo_(y, y0) * w + hi_(y - y0, 0) * w1 + c
        d = y + c
        before = _g(d, w) - _g(d - y0, w) + _g(d - y0, w1) - _g(d - self.rows, w1)
        hi = lo_(d, self.rows - 1)
        padded = hi_(lo_(hi, d - w1) - hi_(y + 1, y0) + 1, 0)
        return before + (hi - y) - padded


class _ReadBuffer:
    """An operand SRAM as SCALE-Sim runs it: a window of sets over the fetch order, moved a half at a time.

    The active half covers ``active`` sets from ``start`` (cyclically over all ``sets``); a demand
    outside it moves the window by a prefetch half, each move completing ``step`` cycles after the
    previous one (request lines at the interface bandwidth plus the read latency), whether or not
    the array was waiting. A line waits for every move it caused, and SCALE-Sim counts a wait twice.
    """

    def __init__(self, order: _Order, spec: BufferSpec):
        size = spec.words
        self.per_set = math.ceil(size / SETS_PER_BUFFER)
        active_words = math.ceil(size / 2)
        prefetch_words = size - active_words
        self.sets = order.elements // self.per_set + 1
        self.active = min(math.ceil(active_words / self.per_set), self.sets)
        self.move = min(math.ceil(prefetch_words / self.per_set), self.sets - self.active)
        self.step = math.ceil(prefetch_words / spec.bandwidth) + READ_LATENCY
        self.start = 0
        self.ready = -1.0          # when the last move's data arrived
        self.order = order

        if order.words is not None:
            # each word's copies as (word group, set) keys, ascending: a range search finds an active copy
            self.keys = order.group[order.copies] * self.sets + order.copies // self.per_set

    def outside(self, s):
        """Which of the set indices ``s`` (-1: no demand) lie outside the active window."""
        return (s >= 0) & ((s - self.start) % self.sets >= self.active)

    def unserved(self, positions):
        """Which fetch ``positions`` (-1: none) have no copy of their word in the active window."""
        out = self.outside(np.where(positions >= 0, positions // self.per_set, -1))
        if self.order.words is not None and out.any():     # own copy outside: is another one inside?
            g = self.order.group[positions[out]] * self.sets
            lo, hi = self.start, self.start + self.active
            found = np.searchsorted(self.keys, g + min(hi, self.sets)) - np.searchsorted(self.keys, g + lo)
            if hi > self.sets:
                found += np.searchsorted(self.keys, g + hi - self.sets) - np.searchsorted(self.keys, g)
            out[out] = found == 0
        return out

    def _moves_to(self, position: int) -> int:
        """Window moves until ``position`` (or, for a repeated word, any copy of it) is active."""
        if self.order.words is None:
            ahead = (position // self.per_set - self.start) % self.sets
        else:
            g = self.order.group[position] * self.sets
            at = self.keys[np.searchsorted(self.keys, g):np.searchsorted(self.keys, g + self.sets)] - g
            ahead = int(((at - self.start) % self.sets).min())
        return 0 if ahead < self.active else -(-(ahead - self.active + 1) // self.move)

    def wait(self, positions, clock: float) -> float:
        """Stall of a line demanding fetch ``positions`` (column order, -1: none) at ``clock``."""
        offset = READ_LATENCY
        for position in positions:
            if position < 0:
                continue
            moves = self._moves_to(int(position))
            self.start = (self.start + moves * self.move) % self.sets
            done = 0
            while done < moves:
                if done >= 2 and (moves - done) % 2 == 0:
                    # from the second move on, lateness alternates (x, step − x) or (step, 0):
                    # every further pair of moves adds two steps to the wait
                    offset += (moves - done) * self.step
                    self.ready += (moves - done) * self.step
                    break
                self.ready += self.step
                late = self.ready - (clock + offset)
                offset += 2 * late if late > 0 else late
                done += 1
        return offset - READ_LATENCY


class _WriteBuffer:
    """The output SRAM: results fill it in lines of ``bw`` words; once more than a drain half is held,
    that many lines drain at one line per cycle; a result arriving while a drain runs and the SRAM is
    full waits for it. A drain first closes the line being filled, and frees a whole line's worth for
    every line it drains but the last (SCALE-Sim's accounting), so partly filled lines free extra space."""

    def __init__(self, spec: BufferSpec):
        self.keep = math.ceil(spec.words / 2)            # drain once fewer than this many words are free
        self.width = max(1, int(spec.bandwidth))
        self.lines = math.ceil((spec.words - self.keep) / self.width)
        self.free = spec.words
        self.fill = 0                                    # words in the line being filled
        self.queue: deque[list[int]] = deque()           # undrained lines: [count, words in each]
        self.drain_end = 0.0

    def quiet_lines(self, w_cum, clock0: float) -> int:
        """Index of the first line (in a run whose cumulative writes are ``w_cum``) that needs stepping."""
        n = len(w_cum)
        hit_zero = int(np.searchsorted(w_cum, self.free)) if self.free > 0 else 0
        after = max(0, math.ceil(self.drain_end - clock0))           # lines before the drain is over
        drain = max(int(np.searchsorted(w_cum, self.free - self.keep + 1)), after)
        if drain < n:
            writes = np.flatnonzero(np.diff(w_cum[drain - 1:] if drain else np.r_[0, w_cum]) > 0)
            drain = drain + int(writes[0]) if len(writes) else n
        return min(hit_zero if after > 0 else n, drain, n)

    def skip(self, count: int) -> None:
        self.free -= count
        full, self.fill = divmod(self.fill + count, self.width)
        self._queue(full, self.width)

    def _queue(self, count: int, words: int) -> None:
        if count:
            if self.queue and self.queue[-1][1] == words:
                self.queue[-1][0] += count
            else:
                self.queue.append([count, words])

    def _drain(self, cur: float) -> None:
        self._queue(1 if self.fill else 0, self.fill)
        self.fill = 0
        taken = last = 0
        while taken < self.lines and self.queue:
            run = self.queue[0]
            k = min(run[0], self.lines - taken)
            taken, last = taken + k, run[1]
            run[0] -= k
            if not run[0]:
                self.queue.popleft()
        if taken:
            self.free += taken * self.width - (self.width - last)
            self.drain_end = cur + taken - 1

    def write(self, count: int, clock: float) -> float:
        """Stall of a line writing ``count`` words at ``clock``."""
        cur = clock
        while count > 0:
            if cur < self.drain_end:
                n = count if self.free - count > 0 else max(self.free, 1)
                self.skip(n)
                count -= n
                if self.free <= 0:
                    cur = self.drain_end
            else:
                n = count if self.free - count >= self.keep else max(self.free - self.keep + 1, 1)
                self.skip(n)
                count -= n
                if self.free < self.keep:
                    self._drain(cur)
        return cur - clock


def _span(lo, hi):
    return np.maximum(hi - lo + 1, 0)


class _Plan:
    """Per dataflow: fold counts, lines per fold, and each fold's demand lines (sets per operand, writes)."""

    def __init__(self, st: SystolicStaging, bufs: dict[str, BufferSpec]):
        R, C, m, n, k = st.rows, st.cols, st.m, st.n, st.k
        self.R, self.C = R, C
        df = st.dataflow
        if df == "ws":
            sr, sc, t = k, n, m
        elif df == "os":
            sr, sc, t = m, n, k
        else:
            sr, sc, t = k, m, n
        self.df, self.sr, self.sc, self.t = df, sr, sc, t
        self.rf, self.cf = -(-sr // R), -(-sc // C)
        self.lines = (R + C + t - 2) if df == "os" else (2 * R + C + t - 2)
        self.l = np.arange(self.lines, dtype=np.int64)
        words = self._ifmap_words(st.window)
        if df == "os":
            ifo = _Order(True, t, self.rf, R, sr - (self.rf - 1) * R, words)
            fio = _Order(True, t, self.cf, C, sc - (self.cf - 1) * C)
        elif df == "ws":
            ifo = _Order(True, t, self.rf, R, sr - (self.rf - 1) * R, words)
            fio = _Order(False, sr, self.cf, C, sc - (self.cf - 1) * C)
        else:
            ifo = _Order(False, sr, self.cf, C, sc - (self.cf - 1) * C, words)
            fio = _Order(True, t, self.rf, R, sr - (self.rf - 1) * R)
        self.ifmap = _ReadBuffer(ifo, bufs["input"])
        self.filter = _ReadBuffer(fio, bufs["weight"])
        self.ofmap = _WriteBuffer(bufs["output"])

    def _ifmap_words(self, window: ConvWindow | None):
        """``words(y, c)`` over the ifmap's fetch grid (its blocks stacked), or None for a GEMM's distinct words."""
        if window is None:
            return None
        df, R, C = self.df, self.R, self.C
        yb = self.t if df != "is" else self.sr

        def words(y, c):
            b, u = np.divmod(y, yb)
            i, j = (u, b * R + c) if df == "ws" else (b * (C if df == "is" else R) + c, u)
            return window.words(i, j)
        return words

    def _ends(self, buf: _ReadBuffer, y, c, ok):
        """First and last fetch positions per line over columns ``c`` (rows ``y``), and every position
        when the order has holes or repeats (those lines are stepped element by element)."""
        o = buf.order
        if o.words is None:
            lo, hi = c
            return (np.where(ok, o.pos(y[0], lo), -1), np.where(ok, o.pos(y[1], hi), -1), None)
        pos = np.where(ok, o.pos(np.clip(y, 0, o.rows - 1), np.clip(c, 0, o.width - 1)), -1)
        first = np.where(pos >= 0, pos, np.iinfo(np.int64).max).min(axis=1)
        return np.where(first == np.iinfo(np.int64).max, -1, first), pos.max(axis=1), pos

    def _stream(self, buf: _ReadBuffer, block: int, width: int, lead: int):
        """A diagonal stream: line l reads anti-diagonal l − lead of its block's rows."""
        t, o = self.t, buf.order
        dl = self.l - lead
        lo = np.maximum(0, dl - t + 1)
        hi = np.minimum(width - 1, dl)
        base = block * t
        if o.words is None:
            return self._ends(buf, (base + dl - lo, base + dl - hi), (lo, hi), lo <= hi)
        c = np.arange(o.width)[None, :]
        ok = (c >= lo[:, None]) & (c <= hi[:, None])
        return self._ends(buf, base + dl[:, None] - c, np.broadcast_to(c, ok.shape), ok)

    def _tile(self, buf: _ReadBuffer, block: int, fr: int, used_rows: int, width: int):
        """A stationary tile: lines 0..R-1 load its rows, bottom row first."""
        o = buf.order
        kk = self.R - 1 - self.l
        ok = (kk >= 0) & (kk < used_rows)
        y = block * self.sr + fr * self.R + kk
        if o.words is None:
            return self._ends(buf, (y, y), (0, width - 1), ok)
        c = np.arange(o.width)[None, :]
        ok2 = ok[:, None] & (c < width)
        return self._ends(buf, np.broadcast_to(y[:, None], ok2.shape), np.broadcast_to(c, ok2.shape), ok2)

    def _settled(self, buf: _ReadBuffer, y0: int, y1: int, width: int) -> bool:
        """Whether rows ``y0``..``y1`` (columns < ``width``) of ``buf``'s fetch grid all lie in its
        active window, so the fold reading them cannot move it."""
        o = buf.order
        if o.words is None:
            lo, hi = int(o.pos(y0, 0)), int(o.pos(y1, width - 1))
        else:
            block = o.rank[y0:y1 + 1, :width]
            real = block[block >= 0]
            if not len(real):
                return True
            lo, hi = int(real.min()), int(real.max())
        a = (lo // buf.per_set - buf.start) % buf.sets
        b = (hi // buf.per_set - buf.start) % buf.sets
        return a <= b < buf.active

    def fold(self, fc: int, fr: int):
        """Per line of fold (fc, fr): ifmap (first, last, all) positions, filter's, and words written;
        None for an operand whose whole fold already lies in its active window."""
        R, C, t, l = self.R, self.C, self.t, self.l
        ru = min(R, self.sr - fr * R)
        cu = min(C, self.sc - fc * C)
        if self.df == "os":
            i = None if self._settled(self.ifmap, fr * t, fr * t + t - 1, ru) else self._stream(self.ifmap, fr, ru, 0)
            f = None if self._settled(self.filter, fc * t, fc * t + t - 1, cu) else self._stream(self.filter, fc, cu, 0)
            j = l - (t - 1)
            w = _span(np.maximum(0, j - R + 1), np.minimum(cu - 1, j - (R - ru)))
        else:
            sb, tb = (self.ifmap, self.filter) if self.df == "ws" else (self.filter, self.ifmap)
            s = None if self._settled(sb, fr * t, fr * t + t - 1, ru) else self._stream(sb, fr, ru, R)
            y = fc * self.sr + fr * R
            tl = None if self._settled(tb, y, y + ru - 1, cu) else self._tile(tb, fc, fr, ru, cu)
            i, f = (s, tl) if self.df == "ws" else (tl, s)
            j = l - (2 * R - 1)
            w = _span(np.maximum(0, j - t + 1), np.minimum(cu - 1, j))
        return i, f, w


def staged_cycles(st: SystolicStaging, bufs: dict[str, BufferSpec]) -> tuple[float, float]:
    """(cycles, compute cycles) of the staging: demand lines plus SCALE-Sim's stalls, all copies.

    ``bufs`` maps ``input``/``weight``/``output`` to that operand's SRAM and DRAM interface.
    Cycles count lines (SCALE-Sim's "Total Cycles" is this minus one: it reports the last index).
    Past :data:`MAX_FOLDS` folds the stall rate of the last half simulated is extrapolated, so a
    layer's cost is bounded (docs/scalesim_timing.md §9 bounds the error this makes).
    """
    p = _Plan(st, bufs)
    folds = p.cf * p.rf
    # replay whole column folds (the period of the operands' re-reads) when one fits, and measure the
    # rate to extrapolate over the second half of them
    run = min(folds, max(MAX_FOLDS // p.rf, 1) * p.rf if p.rf <= MAX_FOLDS else MAX_FOLDS)
    mid = (run // p.rf // 2) * p.rf if run >= 2 * p.rf else run // 2
    stall = unseen = half = 0.0
    L = p.lines
    for f in range(run):
        if f == mid:
            half = stall
        fc, fr = divmod(f, p.rf)
        stall, last = _fold(p, fc, fr, f * L, stall, f == folds - 1)
        unseen = last if f == folds - 1 else unseen
    if run < folds:
        stall += (stall - half) / (run - mid) * (folds - run)
    lines = folds * L
    # SCALE-Sim's run ends at the last line's output write: that line's read stalls are not waited for.
    return st.copies * (lines + stall - unseen), float(st.copies * lines)


def _fold(p: _Plan, fc: int, fr: int, base: int, stall: float, final: bool) -> tuple[float, float]:
    """Step through fold (fc, fr) from ``stall`` cycles of stall so far; the new total and, on the
    final fold, how much of its last line's stall is a read stall the run does not wait for."""
    L = p.lines
    ifmap, filt, w = p.fold(fc, fr)
    reads = [(buf, *arrays) for buf, arrays in ((p.ifmap, ifmap), (p.filter, filt)) if arrays is not None]
    # distinct words: a line misses when the set of its first or last word is outside the window
    sets = [(buf, np.where(a >= 0, a // buf.per_set, -1), np.where(b >= 0, b // buf.per_set, -1))
            for buf, a, b, every in reads if every is None]
    repeats = [(buf, every) for buf, a, b, every in reads if every is not None]

    def misses(lo: int, hi: int):
        m = np.zeros(hi - lo, dtype=bool)
        for buf, a, b in sets:
            m |= buf.outside(a[lo:hi]) | buf.outside(b[lo:hi])
        for buf, every in repeats:
            m |= buf.unserved(every[lo:hi]).any(axis=1)
        return m

    w_cum = np.cumsum(w)
    unseen = 0.0
    i = 0
    window = None
    found = L
    while i < L:
        if window != (p.ifmap.ready, p.filter.ready):
            # the windows moved: find the next line that misses, in growing chunks
            window, found, j, chunk = (p.ifmap.ready, p.filter.ready), L, i, 512
            while j < L:
                m = misses(j, min(j + chunk, L))
                if m.any():
                    found = j + int(np.argmax(m))
                    break
                j, chunk = j + chunk, min(chunk * 2, 4096)
        nxt = found - i
        done = w_cum[i - 1] if i else 0
        nxt = min(nxt, p.ofmap.quiet_lines(w_cum[i:] - done, base + i + stall))
        if nxt:
            p.ofmap.skip(int(w_cum[i + nxt - 1] - done))
            i += nxt
            if i >= L:
                break
        clock = base + i + stall
        s_of = p.ofmap.write(int(w[i]), clock)
        worst = max(s_of, 0.0)
        for buf, a, b, every in reads:
            worst = max(worst, buf.wait(every[i] if every is not None else (a[i], b[i]), clock))
        if final and i == L - 1:
            unseen = worst - s_of
        stall += worst
        i += 1
    return stall, unseen
