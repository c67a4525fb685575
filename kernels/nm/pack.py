"""The packed A of the CUDA-core N:M kernels: one or more N:M terms as one K-ordered entry list.

``kernels/nm/nm_spmm_packed.cu`` walks K once and, at every pipeline stage, multiplies all
kept values ("entries") of that K range, whichever term they come from. That is what makes
TASD one pass: a series ``A1 + A2 + ...`` is packed into one entry list, and the kernel's B
and C tiles stay on chip while the terms stream through. A single N:M tensor is the
one-term case.

Entry order: K is cut into L-blocks of ``L = lcm(M of every term)`` dense rows; inside a
block, term by term, window by window, kept value by kept value. Every row (and vector) has
the same number ``E_L`` of entries per L-block, so a stage of ``ks`` rows (a multiple of
``L``) holds ``ks / L * E_L`` entries. Windows past a term's last group (when its
``groups * M`` is shorter than the padded K) are padding: value 0, positions ``>= K``.

Code here is xp-generic: NumPy for the model and tests, CuPy for the real launch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kernels.backend import array_module
from kernels.errors import InputError
from kernels.nm.format import VECTOR_WIDTH, NMTensor

__all__ = ["ROW_ALIGN", "Packed", "entries_per_block", "pack_terms", "pad_cols"]

ROW_ALIGN = 128
"""Rows of the packed arrays are padded to this (the largest block height), so loads never leave them."""


@dataclass(frozen=True, eq=False)
class Packed:
    """Kernel-ready A: see ``kernels/nm/nm_spmm_packed.cu`` for how each array is read.

    ``at`` float32 ``(e_tot, rows_pad)``: kept values transposed (zeros in padded rows).
    ``kv`` int32 ``(rows_pad // 32, e_tot)``: vector layout, dense K row of each entry
    (padded vectors repeat vector 0, so their rows stay inside every stage's slab).
    ``ke`` uint8 ``(e_tot, rows_pad)``: element layout, K row of each entry minus the first row
    of its stage (``ke_ks`` rows per stage); None for the vector layout.
    """

    layout: str
    rows: int
    k: int
    rows_pad: int
    lblock: int
    e_per_block: int
    blocks: int
    at: object
    kv: object
    ke: object
    ke_ks: int | None
    density: float

    @property
    def e_tot(self) -> int:
        return self.blocks * self.e_per_block

    def stage_shape(self, ks: int) -> tuple[int, int, int]:
        """(entries per stage, number of stages) for stages of ``ks`` dense rows, and ks itself."""
        if ks % self.lblock:
            raise InputError(f"nm packing: a stage of {ks} rows is not a multiple of L = {self.lblock}")
        per = ks // self.lblock
        return per * self.e_per_block, -(-self.blocks // per), ks


def _lcm(values) -> int:
    out = 1
    for v in values:
        out = out * v // math.gcd(out, v)
    return out


def entries_per_block(terms) -> tuple[int, int]:
    """``(L, E_L)``: the L-block height (lcm of the terms' M) and the entries per row in one L-block."""
    lblock = _lcm(t.m for t in terms)
    return lblock, sum(t.n * lblock // t.m for t in terms)


def pack_terms(terms, ke_ks: int | None = None) -> Packed:
    """Pack 2-D N:M terms (all one layout and shape, compressed along axis 1) into one entry list.

    ``ke_ks`` (element layout only) is the stage height the uint8 ``ke`` offsets are relative
    to; it must be a multiple of L and at most 256.

    Raises
    ------
    InputError
        For no terms, mixed layouts or shapes, a term not 2-D along axis 1, or a bad ``ke_ks``.
    """
    terms = list(terms)
    if not terms or not all(isinstance(t, NMTensor) for t in terms):
        raise InputError("nm packing: expected one or more NMTensor terms")
    first = terms[0]
    for t in terms:
        if len(t.shape) != 2 or t.axis != 1:
            raise InputError(f"nm packing: terms must be 2-D (rows, K) along axis 1, got {t.shape} along {t.axis}")
        if t.shape != first.shape or t.layout != first.layout:
            raise InputError(
                f"nm packing: terms disagree: {t.layout} {t.shape} vs {first.layout} {first.shape}"
            )
    xp = array_module(first.values)
    rows, k = first.shape
    lblock = _lcm(t.m for t in terms)
    blocks = -(-k // lblock)
    rows_pad = -(-rows // ROW_ALIGN) * ROW_ALIGN
    vals, kabs = [], []
    for t in terms:
        wins = blocks * lblock // t.m  # windows covering the padded K; past t.groups: padding
        extra = wins - t.groups
        v = t.values.astype(xp.float32).reshape(rows, t.groups, t.n)
        idx = t.indices.astype(xp.int32)
        if extra:
            v = xp.concatenate([v, xp.zeros((rows, extra, t.n), dtype=xp.float32)], axis=1)
            fill = xp.broadcast_to(xp.arange(t.n, dtype=xp.int32), (idx.shape[0], extra, t.n))
            idx = xp.concatenate([idx, fill], axis=1)
        kk = idx + (xp.arange(wins, dtype=xp.int32) * t.m)[:, None]
        per = lblock // t.m
        vals.append(v.reshape(rows, blocks, per * t.n))
        kabs.append(kk.reshape(idx.shape[0], blocks, per * t.n))
    values = xp.concatenate(vals, axis=2).reshape(rows, -1)
    kabs = xp.concatenate(kabs, axis=2).reshape(kabs[0].shape[0], -1)
    e_per_block = int(values.shape[1]) // blocks
    at = xp.zeros((values.shape[1], rows_pad), dtype=xp.float32)
    at[:, :rows] = values.T
    density = float(sum(t.n / t.m for t in terms))
    if first.layout == "vector":
        nvec_pad = rows_pad // VECTOR_WIDTH
        kv = xp.concatenate([kabs, xp.broadcast_to(kabs[:1], (nvec_pad - kabs.shape[0], kabs.shape[1]))], axis=0)
        return Packed("vector", rows, k, rows_pad, lblock, e_per_block, blocks,
                      at, xp.ascontiguousarray(kv, dtype=xp.int32), None, None, density)
    if ke_ks is None or ke_ks % lblock or not 0 < ke_ks <= 256:
        raise InputError(f"nm packing: element stage height {ke_ks} must be a multiple of L = {lblock}, at most 256")
    per_stage = ke_ks // lblock * e_per_block
    stage_start = (xp.arange(kabs.shape[1], dtype=xp.int32) // per_stage) * ke_ks
    ke = xp.zeros((kabs.shape[1], rows_pad), dtype=xp.uint8)
    ke[:, :rows] = (kabs - stage_start[None, :]).T.astype(xp.uint8)
    return Packed("element", rows, k, rows_pad, lblock, e_per_block, blocks, at, None, ke, ke_ks, density)


def pad_cols(b, xp):
    """``b`` as contiguous float32 with its columns zero-padded to a multiple of 4 (16-byte B rows)."""
    cols = int(b.shape[1])
    c4 = -(-cols // 4) * 4
    if c4 == cols:
        return xp.ascontiguousarray(b, dtype=xp.float32)
    out = xp.zeros((b.shape[0], c4), dtype=xp.float32)
    out[:, :cols] = b
    return out
