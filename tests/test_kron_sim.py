"""Kron-matmul in the simulator: fused vs per-factor lowering, FastKron's FLOP count, traffic."""

from __future__ import annotations

import math

import pytest

from accelsim import KronMatmul, load_arch, simulate
from accelsim.model.kron import fused_groups


def _fastkron_flops(m, factors):
    k, total = math.prod(p for p, _ in factors), 0
    for p, q in reversed(factors):
        k = k // p * q
        total += k * p
    return 2 * m * total


@pytest.mark.parametrize("factors", [((8, 8),) * 5, ((16, 16),) * 4, ((4, 6), (5, 3), (2, 7))])
def test_fusion_saves_offchip_traffic_not_compute(factors):
    un = simulate("tensor_core", KronMatmul("k", 256, factors, fused=False)).layers[0]
    fu = simulate("tensor_core", KronMatmul("k", 256, factors, fused=True)).layers[0]
    assert un.detail["flops"] == fu.detail["flops"] == _fastkron_flops(256, factors)
    assert un.compute_cycles == fu.compute_cycles
    if fu.detail["launches"] < len(factors):
        assert fu.traffic_bytes["hbm"] < un.traffic_bytes["hbm"]
        assert fu.edp < un.edp


def test_unfused_offchip_traffic_closed_form():
    # Ample on-chip space: each step reads its input and writes its output to HBM once (plus the
    # factor), and every boundary adds one transpose (read + write of the intermediate).
    m, factors = 64, ((4, 4), (4, 4), (4, 4))
    arch = load_arch("tensor_core")
    r = simulate(arch, KronMatmul("k", m, factors, fused=False)).layers[0]
    width, eb = 64, 2
    inter = m * width * eb
    reads = 3 * inter + 3 * 16 * eb + 2 * inter  # inputs of 3 steps, factors, transposes
    writes = 3 * inter + 2 * inter  # outputs of 3 steps, transposes
    assert r.actions["memory.hbm.read"] == reads
    assert r.actions["memory.hbm.write"] == writes


def test_fused_groups_respect_shared_memory():
    arch = load_arch("tensor_core")
    per_sm = arch.memory[-1].capacity_for("output") / arch.compute.units
    for factors in (((8, 8),) * 6, ((32, 32),) * 4, ((128, 128),) * 2):
        groups = fused_groups(arch, KronMatmul("k", 1024, factors), "fp16")
        assert sum(groups) == len(factors)
        i = 0
        for g in groups:
            slice_ = math.prod(max(p, q) for p, q in list(reversed(factors))[i:i + g])
            assert g == 1 or slice_ * 16 * 2 <= per_sm
            i += g
