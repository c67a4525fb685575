"""Lowering: a workload layer → the GEMM mappings that run it (conv as GEMM, Kron as factor GEMMs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from accelsim.model.arch import ArchConfig
from accelsim.errors import WorkloadError
from accelsim.model.kron import lower_kron
from accelsim.model.mapper import FIXED, Mapper, Window
from accelsim.model.mapping import Mapping
from accelsim.model.sparsity import apply_sparsity, kept_length
from accelsim.model.staging import ConvWindow
from accelsim.model.workload import Conv, Gemm, KronMatmul

__all__ = ["Lowered", "lower_layer"]


@dataclass
class Lowered:
    mappings: list[Mapping]
    detail: dict = field(default_factory=dict)


def _dtype(arch: ArchConfig, layer) -> str:
    dtype = layer.dtype or arch.compute.default_dtype
    if not arch.supports(dtype):
        raise WorkloadError(f"layer {layer.name!r}: dtype {dtype!r} is not supported by arch {arch.name!r}")
    return dtype


def _stage_window(conv: Conv, gemm: Gemm, mappings: list[Mapping]) -> None:
    """A conv's staged mappings read the ifmap through its im2col window (repeated words, edges):
    all of its columns when dense, the kept ones when N:M weights are compressed along K."""
    win = ConvWindow(conv.ifmap_h, conv.ifmap_w, conv.filt_h, conv.filt_w, conv.channels, conv.stride_h, conv.stride_w)
    sp = conv.weight_sparsity
    nm = sp.pattern if sp.kind == "nm" and not sp.pattern.dense else None
    for mp in mappings:
        if mp.staging is None:
            continue
        if mp.staging.k == gemm.k and win.repeats_or_skips:
            mp.staging = dataclasses.replace(mp.staging, window=win)
        elif nm is not None and mp.staging.k == kept_length(gemm.k, nm):
            mp.staging = dataclasses.replace(mp.staging, window=dataclasses.replace(win, keep=(nm.n, nm.m)))


def lower_layer(arch: ArchConfig, layer, mapper: Mapper = FIXED) -> Lowered:
    """The mappings that execute ``layer`` on ``arch`` as ``mapper`` maps it, sparsity applied.

    A convolution runs as its im2col GEMM; the searching mapper also gets its window, so tiles
    reuse inputs across neighbouring outputs."""
    dtype = _dtype(arch, layer)
    if isinstance(layer, KronMatmul):
        return Lowered(*lower_kron(arch, layer, dtype, mapper))
    gemm: Gemm = layer.as_gemm() if isinstance(layer, Conv) else layer
    window = None
    if isinstance(layer, Conv):
        oy, ox = layer.ofmap
        window = Window(layer.batch, oy, ox, layer.filt_h, layer.filt_w, layer.stride_h, layer.stride_w)
    mappings, detail = apply_sparsity(arch, gemm, dtype, mapper, window)
    if isinstance(layer, Conv) and layer.batch == 1:
        _stage_window(layer, gemm, mappings)
    tiles = sum(mp.tiles for mp in mappings)
    split = max(mp.tile.get("split_k", 1) for mp in mappings)
    return Lowered(mappings, {"m": gemm.m, "n": gemm.n, "k": gemm.k, "dtype": dtype, "tiles": tiles,
                              "split_k": split, **detail})
