"""Sparse operands on sparse hardware: which pattern actually runs, how many passes, what is stored.

Rules (what the hardware can exploit, never more):
- an N:M operand on a core that supports N:M on that operand does N/M of the dense MACs, its
  reduction dimension compressed to the kept length N·⌊K/M⌋ + min(K mod M, N); a pattern the core lacks runs at the sparsest
  supported pattern it satisfies (1:4 on a 2:4-only core runs as 2:4), else dense;
- unstructured sparsity runs dense unless the core skips zeros (``skip_unstructured``);
- a TASD series runs one N:M pass per term; every term must be a supported pattern. On a plain
  structured-sparse core each pass re-reads the dense operand and the partial sums; with the
  TASD extension they stay stationary while the terms stream, and TASD units extract
  activation terms at run time;
- an operand stored compressed (``compressed_levels``) moves N/M of its values plus
  ⌈log2 M⌉ bits of metadata per kept value at those levels; every effectual MAC pays an
  index select on the dense operand and every kept value a metadata decode.
"""

from __future__ import annotations

import math

from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.errors import WorkloadError
from accelsim.model.mapper import FIXED, Mapper, Window, plan_gemm
from accelsim.model.mapping import Exec, Mapping
from accelsim.model.workload import Gemm, Sparsity
from kernels.nm.format import NMPattern

__all__ = ["apply_sparsity", "executed_pattern", "kept_length", "satisfies"]


def kept_length(k: int, p: NMPattern) -> int:
    """Positions kept along a reduction of length ``k`` under ``p``: N per full group of M, and
    ``min(k mod M, N)`` in a partial last group (the compressed K the array iterates over)."""
    return p.n * (k // p.m) + min(k % p.m, p.n)


def satisfies(p: NMPattern, q: NMPattern) -> bool:
    """True when every tensor with pattern ``p`` also has pattern ``q`` (groups aligned from 0)."""
    if q.dense or (p.n == q.n and p.m == q.m):
        return True
    if p.m % q.m == 0:
        return q.n >= min(p.n, q.m)
    if q.m % p.m == 0:
        return q.n * p.m >= p.n * q.m
    return False


def executed_pattern(arch: ArchConfig, p: NMPattern, operand: str) -> NMPattern | None:
    """The supported pattern an operand of pattern ``p`` runs at: the sparsest one it satisfies.

    ``None`` means dense execution (no supported pattern fits, or the operand is not supported).
    """
    sup = arch.compute.sparsity
    if operand not in sup.operands:
        return None
    fits = [q for q in sup.nm_patterns() if satisfies(p, q) and not q.dense]
    return min(fits, key=lambda q: (q.density, q.m)) if fits else None


def _nm_exec(arch: ArchConfig, gemm: Gemm, operand: str, q: NMPattern, density: float, dtype: str, **kw) -> Exec:
    eb = DTYPE_BYTES[dtype]
    k_exec = kept_length(gemm.k, q)
    dense_other = gemm.m * gemm.n * k_exec * gemm.count
    kept = (gemm.m if operand == "input" else gemm.n) * k_exec * gemm.count
    stored = q.density * (eb + q.metadata_bits / 8) / eb
    return Exec(
        k_exec=k_exec,
        stored={operand: stored},
        compressed_levels=arch.compute.sparsity.compressed_levels,
        effectual=density,
        actions={"compute.index_select": float(dense_other), "compute.metadata_decode": float(kept)},
        **kw,
    )


def _check_series(arch: ArchConfig, gemm: Gemm, sp: Sparsity, operand: str) -> None:
    sup = arch.compute.sparsity
    supported = set(sup.nm_patterns())
    for term in sp.series:
        if term not in supported or operand not in sup.operands:
            raise WorkloadError(
                f"layer {gemm.name!r}: TASD term {term} on the {operand} operand does not fit arch {arch.name!r} "
                f"(supported: {', '.join(map(str, sorted(supported))) or 'none'} on {', '.join(sup.operands)})"
            )
    tasd = arch.compute.tasd
    if tasd is not None and len(sp.series) > tasd.max_terms:
        raise WorkloadError(
            f"layer {gemm.name!r}: TASD series {sp} has {len(sp.series)} terms; arch {arch.name!r} runs at most {tasd.max_terms}"
        )
    if operand == "input" and tasd is None:
        raise WorkloadError(
            f"layer {gemm.name!r}: TASD on activations needs TASD units; arch {arch.name!r} has no compute.tasd"
        )


def _tasd_extract_cycles(arch: ArchConfig, gemm: Gemm, series: tuple[NMPattern, ...], mapping: Mapping) -> float:
    """Cycles the TASD units need per tile to extract the activation terms (up to M cycles a block)."""
    tasd = arch.compute.tasd
    m_block = max(p.m for p in series)
    per_block = tasd.cycles_per_block or m_block
    blocks = gemm.m * math.ceil(gemm.k / m_block) * gemm.count
    return blocks * per_block * len(series) / tasd.units / max(mapping.tiles, 1)


def _tasd(arch: ArchConfig, gemm: Gemm, sp: Sparsity, operand: str, dtype: str, plan):
    _check_series(arch, gemm, sp, operand)
    ttc = arch.compute.tasd is not None
    mappings = []
    for i, term in enumerate(sp.series):
        other = "weight" if operand == "input" else "input"
        stationary = (other, "output") if (ttc and i > 0) else ()
        exe = _nm_exec(arch, gemm, operand, term, term.density, dtype, stationary=stationary)
        mp = plan(exe, f"{gemm.name}.t{i}")
        if operand == "input":
            extract = _tasd_extract_cycles(arch, gemm, sp.series, mp)
            blocks = gemm.m * math.ceil(gemm.k / term.m) * gemm.count
            mp.actions["tasd_unit.op"] = float(blocks)
            mp.groups = [g.scaled(cycles=lambda c: max(c, extract)) if g.macs else g for g in mp.groups]
        if i > 0:
            mp.macs = 0.0
        mappings.append(mp)
    return mappings, {"executed": f"tasd:{'+'.join(map(str, sp.series))}", "passes": len(mappings), "ttc": ttc}


def apply_sparsity(arch: ArchConfig, gemm: Gemm, dtype: str, mapper: Mapper = FIXED,
                   window: Window | None = None) -> tuple[list[Mapping], dict]:
    """The mappings (one per pass) that run ``gemm`` with its operand sparsity on ``arch``, as ``mapper``
    maps each pass (``window``: the convolution ``gemm`` lowers, if any)."""

    def plan(exe: Exec = Exec(), name: str = gemm.name) -> Mapping:
        return plan_gemm(arch, name, gemm.m, gemm.n, gemm.k, dtype, gemm.count, exe, mapper, window)

    ws, xs = gemm.weight_sparsity, gemm.input_sparsity
    sparse = [(op, sp) for op, sp in (("weight", ws), ("input", xs)) if sp.kind != "dense"]
    if len(sparse) > 1:
        tasd_ops = [op for op, sp in sparse if sp.kind == "tasd"]
        if tasd_ops:
            raise WorkloadError(f"layer {gemm.name!r}: TASD on one operand combines with a dense other operand only")
        # Two sparse operands: the hardware exploits the one it supports best; the other runs dense.
        sparse = [min(sparse, key=lambda t: _speed(arch, t[0], t[1]))]
    if not sparse:
        return [plan()], {"executed": "dense"}
    operand, sp = sparse[0]
    if sp.kind == "tasd":
        return _tasd(arch, gemm, sp, operand, dtype, plan)
    if sp.kind == "nm":
        q = executed_pattern(arch, sp.pattern, operand)
        if q is not None:
            exe = _nm_exec(arch, gemm, operand, q, sp.density, dtype)
            return [plan(exe)], {"executed": str(q)}
    if _skips_unstructured(arch, operand, sp):
        k_exec = max(1, math.ceil(gemm.k * sp.density))
        exe = Exec(k_exec=k_exec, effectual=sp.density,
                   actions={"compute.metadata_decode": float(gemm.n * k_exec * gemm.count)})
        return [plan(exe)], {"executed": f"skip:{sp}"}
    exe = Exec(effectual=sp.density)
    return [plan(exe)], {"executed": "dense"}


def _skips_unstructured(arch: ArchConfig, operand: str, sp: Sparsity) -> bool:
    """Whether the core skips the zeros of this unstructured-sparse operand."""
    sup = arch.compute.sparsity
    return sp.kind == "unstructured" and sup.skip_unstructured and operand in sup.operands


def _speed(arch: ArchConfig, operand: str, sp: Sparsity) -> float:
    if sp.kind == "nm":
        q = executed_pattern(arch, sp.pattern, operand)
        return q.density if q else 1.0
    if _skips_unstructured(arch, operand, sp):
        return sp.density
    return 1.0

