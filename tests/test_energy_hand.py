"""Energy, action counts and transfer time worked out by hand, independently of the code under test.

One small weight-stationary array (4×4, int8, DRAM → SRAM) whose every price differs: read and write
per level, MAC, metadata decode, index select, TASD unit and leakage, so that pricing a write at the
read price, swapping two actions or dropping one changes a number here. The expected values are
closed forms from the layer's dimensions and the rules the model documents:

- WS folds (``mapping.py``): K on the rows, N on the columns, the M input rows stream; ``rf = ⌈K_run/4⌉``
  row folds inside ``cf = ⌈N/4⌉`` column folds; one fold takes ``2·rows + cols + M − 2`` cycles.
- Reuse: the SRAM partition of an operand is the buffer DRAM fills. The input (M×K) is refetched per
  column fold unless all of it fits; a finished-output tile (M×N/cf) that does not fit spills per row
  fold; weights are read once. The SRAM itself has nothing inside it: the array re-reads the input
  per column fold and the outputs per row fold. Output bytes read back are the refetches minus one
  copy. An operand stored compressed moves its stored fraction of the dense bytes at those levels.
- N:M (``sparsity.py``): K runs compressed to N·⌊K/M⌋ + min(K mod M, N); each kept value is one
  metadata decode, each issued MAC one index select; a kept value takes 1 byte + ⌈log2 M⌉ bits.
  TASD: one pass per term; with TASD units the dense operand and the outputs stay on chip after the
  first pass, and the units extract M·⌈K/m⌉ blocks per term.
- The engine: a tile's load and write-back are its MAC share of the slowest level's transfer time
  (the channels stream, so only the layer's end is rounded up to a whole cycle); reads and writes use
  separate channels. With T identical tiles the double-buffered
  pipeline runs at its slowest stage: ``cycles = L + C + S + (T − 1)·max(L, C, S)``.

The same holds for a small tensor-core arch (8 SMs, ``TC_YAML``): waves, the split-K choice and its fp32
partial sums, the roofline, each from the rule in ``mapping._tensor_core_groups``'s docstring.
"""

from __future__ import annotations

import math

import pytest

from accelsim import Gemm, Sparsity, load_arch, simulate
from accelsim.model.arch import load_yaml
from accelsim.model.engine import _transfer_time, run_mapping
from accelsim.model.lowering import lower_layer
from accelsim.model.mapping import Mapping, TileGroup, operand_traffic, roofline_cycles

ARCH_YAML = """
version: 1
name: hand_ws_4x4
clock_ghz: 1.0
compute:
  kind: systolic
  rows: 4
  cols: 4
  dataflow: ws
  staging: pipeline       # the tile pipeline, whose closed forms these tests write (SCALE-Sim's: test_scalesim_stalls)
  default_dtype: int8
  sparsity: {patterns: ['2:4', '1:8'], operands: [weight, input], compressed_levels: [dram, sram]}
  tasd: {units: 2, max_terms: 2, cycles_per_block: 3}
memory:
  - {name: dram, bandwidth: 16, write_bandwidth: 8, read_pj_per_byte: 200.0, write_pj_per_byte: 260.0}
  - name: sram
    capacity_bytes: 768
    partition: {input: 256, weight: 256, output: 256}
    bandwidth: 64
    write_bandwidth: 32
    read_pj_per_byte: 3.0
    write_pj_per_byte: 5.0
energy:
  mac_pj: {int8: 0.25}
  metadata_decode_pj: 0.07
  index_select_pj: 0.011
  tasd_unit_pj: 0.9
  leakage_pj_per_cycle: 13.0
"""
DOC = load_yaml(ARCH_YAML)
ROWS = COLS = 4
PART = 256
PRICE = {"dram": (200.0, 260.0), "sram": (3.0, 5.0)}
MAC, DECODE, SELECT, TASD_OP, LEAK = 0.25, 0.07, 0.011, 0.9, 13.0
M, N, K = 24, 8, 16


def arch(**overrides):
    return load_arch(DOC, overrides or None)


def kept(k: int, n: int, m: int) -> int:
    return n * (k // m) + min(k % m, n)


def stored_fraction(n: int, m: int) -> float:
    """Bytes stored per dense int8 byte: N/M of the values, each 1 byte plus ⌈log2 M⌉ bits of metadata."""
    return n / m * (1 + math.ceil(math.log2(m)) / 8)


def traffic(k_run: int, stored: dict | None = None, stationary: tuple = (), count: int = 1):
    """``(reads, writes)`` per level and operand of ``count`` M×N×K GEMMs run with reduction length ``k_run``."""
    stored = stored or {}
    rf, cf = math.ceil(k_run / ROWS), math.ceil(N / COLS)
    s = {op: stored.get(op, 1.0) for op in ("input", "weight", "output")}  # both levels store compressed
    rd = {lvl: dict.fromkeys(s, 0.0) for lvl in PRICE}
    wr = {lvl: dict.fromkeys(s, 0.0) for lvl in PRICE}
    # DRAM → SRAM: the SRAM partition holds PART stored bytes, i.e. PART / s dense bytes.
    if "input" not in stationary:
        moved = M * K * (cf if M * K > PART / s["input"] else 1)
        rd["dram"]["input"] += moved * s["input"]
        wr["sram"]["input"] += moved * s["input"]
    if "weight" not in stationary:
        rd["dram"]["weight"] += K * N * s["weight"]
        wr["sram"]["weight"] += K * N * s["weight"]
    if "output" not in stationary:
        moved = M * N * (rf if M * (N // cf) > PART else 1)
        wr["dram"]["output"] += moved
        rd["dram"]["output"] += moved - M * N
        rd["sram"]["output"] += moved
        wr["sram"]["output"] += moved - M * N
    # SRAM → array: nothing inside keeps data.
    rd["sram"]["input"] += M * K * cf * s["input"]
    rd["sram"]["weight"] += K * N * s["weight"]
    wr["sram"]["output"] += M * N * rf
    rd["sram"]["output"] += M * N * rf - M * N
    # ``count`` copies run one after another: each moves the same bytes.
    return ({l: {op: v * count for op, v in d.items()} for l, d in rd.items()},
            {l: {op: v * count for op, v in d.items()} for l, d in wr.items()})


def transfer(rd, wr, bw=None):
    """(load, store) cycles of the whole layer: the slowest level, reads and writes on their own channels."""
    bw = bw or {"dram": (16, 8), "sram": (64, 32)}
    load = max((rd[l]["input"] + rd[l]["weight"]) / bw[l][0] for l in PRICE)
    store = max((wr[l]["output"] + rd[l]["output"]) / bw[l][1] for l in PRICE)
    return load, store


def pipeline(tiles: int, compute: float, load_all: float, store_all: float) -> float:
    load, store = load_all / tiles, store_all / tiles
    return math.ceil(load + compute + store + (tiles - 1) * max(load, compute, store))


def fold() -> int:
    return 2 * ROWS + COLS + M - 2


def memory_actions(rd, wr) -> dict:
    out = {}
    for lvl in PRICE:
        out[f"memory.{lvl}.read"] = sum(rd[lvl].values())
        out[f"memory.{lvl}.write"] = sum(wr[lvl].values())
    return out


def add(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in {*a, *b}}


def priced(actions: dict) -> dict:
    """The breakdown by component, each action priced by hand."""
    out = {f"memory.{lvl}": actions[f"memory.{lvl}.read"] * PRICE[lvl][0] + actions[f"memory.{lvl}.write"] * PRICE[lvl][1]
           for lvl in PRICE}
    out["compute"] = (actions["compute.mac.int8"] * MAC + actions.get("compute.metadata_decode", 0.0) * DECODE
                      + actions.get("compute.index_select", 0.0) * SELECT)
    if "tasd_unit.op" in actions:
        out["tasd_unit"] = actions["tasd_unit.op"] * TASD_OP
    out["leakage"] = actions["leakage.cycle"] * LEAK
    return out


def check(layer, cycles: float, compute: float, actions: dict) -> None:
    assert layer.cycles == cycles and layer.compute_cycles == compute
    assert layer.stall_cycles == cycles - compute
    assert set(layer.actions) == set(actions)
    for key, want in actions.items():
        assert layer.actions[key] == pytest.approx(want, rel=1e-12), key
    want = priced(actions)
    assert set(layer.energy_breakdown) == set(want)
    for comp, e in want.items():
        assert layer.energy_breakdown[comp] == pytest.approx(e, rel=1e-12), comp
    assert layer.energy_pj == pytest.approx(sum(want.values()), rel=1e-12)
    for lvl in PRICE:
        assert layer.traffic_bytes[lvl] == pytest.approx(actions[f"memory.{lvl}.read"] + actions[f"memory.{lvl}.write"])


def test_dense_layer_by_hand():
    rd, wr = traffic(K)
    # The closed form above, spelled out once: 8 tiles (4 row × 2 column folds) of 34 cycles; the input
    # (384 B) overflows its 256 B partition and is read once per column fold; an output tile (96 B) fits.
    assert rd["dram"] == {"input": 768, "weight": 128, "output": 0}
    assert wr["dram"] == {"input": 0, "weight": 0, "output": 192}
    assert rd["sram"] == {"input": 768, "weight": 128, "output": 576 + 192}
    assert wr["sram"] == {"input": 768, "weight": 128, "output": 768}
    assert transfer(rd, wr) == (56.0, 48.0)  # DRAM reads 896 B at 16 B/cycle; SRAM writes+reads 1536 B at 32
    cycles = 7 + 34 + 6 + 7 * 34
    assert pipeline(8, fold(), *transfer(rd, wr)) == cycles
    layer = simulate(arch(), Gemm("g", M, N, K)).layers[0]
    actions = {**memory_actions(rd, wr), "compute.mac.int8": M * N * K, "leakage.cycle": cycles}
    check(layer, cycles, 8 * 34, actions)
    assert layer.energy_breakdown["memory.dram"] == 896 * 200.0 + 192 * 260.0
    assert layer.macs == layer.effectual_macs == M * N * K
    assert layer.utilization == pytest.approx(M * N * K / (cycles * ROWS * COLS))


def test_ragged_folds_form_a_repeated_block():
    """K = 18 on 4 rows: 4 full row folds and an edge fold of 2, in each of 3 column folds (N = 12): the
    mapping is one block of 2 column folds plus the last; 15 tiles of 34 cycles, each tile's MACs its rows'."""
    (mp,) = lower_layer(arch(), Gemm("g", M, 12, 18)).mappings
    assert mp.tiles == 15 and mp.compute_cycles == 15 * fold()
    assert [type(g).__name__ for g in mp.groups] == ["TileBlock", "TileGroup", "TileGroup"]
    block = mp.groups[0]
    assert block.times == 2 and block.tiles == 10 and block.total_cycles == 10 * fold()
    assert block.total_macs == 2 * (4 * M * 4 * 4 + M * 2 * 4)
    assert sum(g.total_macs for g in mp.groups) == M * 12 * 18
    assert mp.mapping_efficiency == pytest.approx((18 * 12) / (15 * ROWS * COLS))


@pytest.mark.parametrize("count", [1, 3])
def test_nm_weight_layer_by_hand(count):
    """2:4 weights: K runs as 8 (2 row folds); weights move 0.625 of their bytes; decode and select priced.
    ``count`` copies run one after another: every count and byte times ``count``."""
    k_run = kept(K, 2, 4)
    assert k_run == 8
    rd, wr = traffic(k_run, {"weight": stored_fraction(2, 4)}, count=count)
    tiles = math.ceil(k_run / ROWS) * math.ceil(N / COLS) * count
    cycles = pipeline(tiles, fold(), *transfer(rd, wr))
    layer = simulate(arch(), Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("2:4"), count=count)).layers[0]
    actions = {**memory_actions(rd, wr), "compute.mac.int8": M * N * k_run * count,
               "compute.index_select": M * N * k_run * count, "compute.metadata_decode": N * k_run * count,
               "leakage.cycle": cycles}
    check(layer, cycles, tiles * fold(), actions)
    assert layer.macs == M * N * K * count and layer.effectual_macs == M * N * K * count / 2


def test_two_sparse_operands_run_the_one_the_hardware_exploits_best():
    """2:4 weights and 1:8 inputs, both supported: the sparser input runs (K as 2), the weight runs dense.
    With unstructured inputs the core cannot skip, the 2:4 weights run."""
    both = simulate(arch(), Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("2:4"),
                                 input_sparsity=Sparsity.parse("1:8"))).layers[0]
    k_run = kept(K, 1, 8)
    assert both.detail["executed"] == "1:8"
    assert both.actions["compute.metadata_decode"] == M * k_run and both.actions["compute.index_select"] == M * N * k_run
    rd, wr = traffic(k_run, {"input": stored_fraction(1, 8)})
    assert both.actions["memory.dram.read"] == pytest.approx(sum(rd["dram"].values()))
    weights = simulate(arch(), Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("2:4"),
                                    input_sparsity=Sparsity.parse("u0.5"))).layers[0]
    assert weights.detail["executed"] == "2:4" and weights.actions["compute.metadata_decode"] == N * kept(K, 2, 4)


def test_nm_weight_ragged_k_keeps_the_partial_group():
    """K = 18 under 1:8: two full groups keep 1 each, the partial group of 2 keeps 1 → K runs as 3."""
    k = 18
    layer = simulate(arch(), Gemm("g", M, N, k, weight_sparsity=Sparsity.parse("1:8"))).layers[0]
    assert layer.actions["compute.metadata_decode"] == N * 3
    assert layer.actions["compute.index_select"] == M * N * 3
    assert layer.compute_cycles == 1 * 2 * fold()  # one row fold of the 4 rows, two column folds


@pytest.mark.parametrize("count", [1, 2])
def test_tasd_activations_with_tasd_units_by_hand(count):
    """Input TASD 2:4 + 1:8 on an arch with TASD units: two passes; the weights and outputs stay on chip
    after the first; each pass's tiles wait for the units' extraction when it is slower than the fold."""
    series = ((2, 4), (1, 8))
    gemm = Gemm("g", M, N, K, input_sparsity=Sparsity.parse("tasd:2:4+1:8"), count=count)
    ext_blocks = M * math.ceil(K / 8) * count  # the units work on blocks of the widest term
    want = {}
    cycles = compute = 0.0
    for i, (n, m) in enumerate(series):
        k_run = kept(K, n, m)
        rd, wr = traffic(k_run, {"input": stored_fraction(n, m)}, ("weight", "output") if i else (), count)
        tiles = math.ceil(k_run / ROWS) * math.ceil(N / COLS) * count
        extract = ext_blocks * 3 * len(series) / 2 / tiles  # 3 cycles a block, 2 units
        c = max(fold(), extract)
        cycles += pipeline(tiles, c, *transfer(rd, wr))
        compute += tiles * c
        want = add(want, {**memory_actions(rd, wr), "compute.mac.int8": M * N * k_run * count,
                          "compute.index_select": M * N * k_run * count, "compute.metadata_decode": M * k_run * count,
                          "tasd_unit.op": M * math.ceil(K / m) * count})
    assert [math.ceil(kept(K, n, m) / ROWS) * 2 for n, m in series] == [4, 2]
    want["leakage.cycle"] = cycles
    layer = simulate(arch(), gemm).layers[0]
    check(layer, cycles, compute, want)
    assert layer.actions["tasd_unit.op"] == (24 * 4 + 24 * 2) * count
    assert layer.macs == M * N * K * count  # the second pass adds no dense MACs
    assert layer.effectual_macs == pytest.approx(M * N * K * count * (0.5 + 0.125))


@pytest.mark.parametrize("units", [False, True])
def test_tasd_weights_by_hand(units):
    """Weight TASD. On a plain N:M core every pass re-reads the input and spills the outputs; with TASD units
    the input and outputs stay on chip after the first pass (the units extract activations only: no ops)."""
    doc = DOC if units else dict(DOC, compute={k: v for k, v in DOC["compute"].items() if k != "tasd"})
    a = load_arch(doc)
    want = {}
    cycles = compute = 0.0
    for i, (n, m) in enumerate(((2, 4), (1, 8))):
        k_run = kept(K, n, m)
        rd, wr = traffic(k_run, {"weight": stored_fraction(n, m)}, ("input", "output") if units and i else ())
        tiles = math.ceil(k_run / ROWS) * math.ceil(N / COLS)
        cycles += pipeline(tiles, fold(), *transfer(rd, wr))
        compute += tiles * fold()
        want = add(want, {**memory_actions(rd, wr), "compute.mac.int8": M * N * k_run,
                          "compute.index_select": M * N * k_run, "compute.metadata_decode": N * k_run})
    want["leakage.cycle"] = cycles
    check(simulate(a, Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("tasd:2:4+1:8"))).layers[0],
          cycles, compute, want)


def test_tasd_extraction_on_a_single_tile():
    """24×4×8, input TASD 2:4 + 1:8: each pass is one tile (K runs as 4, then 1; N fits the 4 columns); the
    units take 24 blocks × 3 cycles × 2 terms / 2 units = 72 cycles a tile, more than the 34-cycle fold."""
    layer = simulate(arch(), Gemm("g", 24, 4, 8, input_sparsity=Sparsity.parse("tasd:2:4+1:8"))).layers[0]
    assert layer.compute_cycles == 72 + 72


@pytest.mark.parametrize("k,density,k_run,count", [(16, 0.3, 5, 1), (3, 0.1, 1, 1), (16, 0.3, 5, 2)])
def test_skipped_unstructured_weights_by_hand(k, density, k_run, count):
    """A core that skips zeros runs ⌈K·density⌉ (at least 1) of the reduction, decodes each kept weight's
    position, and moves dense bytes (nothing is stored compressed)."""
    a = arch(**{"compute.sparsity.skip_unstructured": True})
    layer = simulate(a, Gemm("g", M, N, k, weight_sparsity=Sparsity.parse(f"u{density}"), count=count)).layers[0]
    assert layer.actions["compute.metadata_decode"] == N * k_run * count
    assert "compute.index_select" not in layer.actions
    assert layer.actions["compute.mac.int8"] == M * N * k_run * count
    assert layer.compute_cycles == math.ceil(k_run / ROWS) * 2 * fold() * count
    assert layer.effectual_macs == pytest.approx(M * N * k * density * count)


def test_skipped_unstructured_beats_a_denser_pattern():
    """Skipped u0.3 weights (speed 0.3) against 2:4 inputs (0.5): the weights run, K as ⌈16·0.3⌉ = 5."""
    a = arch(**{"compute.sparsity.skip_unstructured": True})
    layer = simulate(a, Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("u0.3"),
                             input_sparsity=Sparsity.parse("2:4"))).layers[0]
    assert layer.detail["executed"] == "skip:u0.3" and layer.actions["compute.metadata_decode"] == N * 5


def test_two_unexploited_operands_keep_the_weight_density():
    """3:8 weights (no supported pattern holds them) and unstructured inputs (not skipped): both run dense; on
    the tie the weight operand, listed first, is the one whose density counts as effectual."""
    layer = simulate(arch(), Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("3:8"),
                                  input_sparsity=Sparsity.parse("u0.5"))).layers[0]
    assert layer.detail["executed"] == "dense" and layer.actions["compute.mac.int8"] == M * N * K
    assert layer.effectual_macs == M * N * K * 3 / 8
    swapped = simulate(arch(), Gemm("g", M, N, K, weight_sparsity=Sparsity.parse("u0.5"),
                                    input_sparsity=Sparsity.parse("3:8"))).layers[0]
    assert swapped.detail["executed"] == "dense" and swapped.effectual_macs == M * N * K / 2


@pytest.mark.parametrize("n,k,tile", [(12, 18, {"m": 24, "n": 8, "k": 4}), (5, 3, {"m": 24, "n": 5, "k": 3})])
def test_ws_tile_is_the_array_or_the_layer_if_smaller(n, k, tile):
    """On a 4-row × 8-column WS array the tile spans K over the rows and N over the columns."""
    (mp,) = lower_layer(arch(**{"compute.cols": 8}), Gemm("g", M, n, k)).mappings
    assert mp.tile == tile and mp.loop_order == ("n", "k")
    assert mp.tiles == math.ceil(k / 4) * math.ceil(n / 8)
    # every fold, edge folds too, pays the physical array's preload and skew: 2·4 rows + 8 columns − 2
    assert mp.compute_cycles == mp.tiles * (2 * 4 + 8 + M - 2)
    if n == 12:  # a block of the full column fold (8 columns), then the 4-column edge fold
        assert [g.total_macs for g in mp.groups] == [M * 8 * 18, M * 4 * 16, M * 4 * 2]
    else:  # one row fold of 3 rows, one column fold of 5 columns
        assert [(g.count, g.macs) for g in mp.groups] == [(1, float(M * 5 * 3))]
    # the input is re-read once per column fold when it overflows its 256 B partition
    assert mp.reads["dram"]["input"] == M * k * (math.ceil(n / 8) if M * k > PART else 1)
    # the array writes each output once per row fold into the SRAM (nothing inside it keeps them)
    assert mp.writes["sram"]["output"] == M * n * math.ceil(k / 4)


def test_equal_column_folds_merge_into_one_group():
    """K = 4 fills the rows once; N = 8 is two full column folds: one group of 2 identical tiles."""
    (mp,) = lower_layer(arch(), Gemm("g", M, 8, 4)).mappings
    assert [(type(g).__name__, g.count, g.macs) for g in mp.groups] == [("TileGroup", 2, float(4 * 4 * M))]


def test_one_column_fold_is_plain_groups():
    """N = 4 fits the 4 columns: the full row folds and the edge fold, no block (K = 18: 4 + 1 folds)."""
    (mp,) = lower_layer(arch(), Gemm("g", M, 4, 18)).mappings
    assert [(g.count, g.macs) for g in mp.groups] == [(4, 4.0 * 4 * M), (1, 2.0 * 4 * M)]


@pytest.mark.parametrize("capacity,refetch", [(100, 4), (191, 4), (192, 1)])
def test_output_spills_per_row_fold_unless_its_tile_fits_in_bytes(capacity, refetch):
    """fp16 outputs of 24×8 in 2 column folds: a tile is 24·4 elements = 192 bytes; below that the partial
    sums leave and return once per row fold (4)."""
    sizes = {"m": 24, "n": 8, "k": 16}
    assert operand_traffic(("m", "n"), sizes, [("n", 2), ("k", 4)], capacity, 2) == 24 * 8 * 2 * refetch


@pytest.mark.parametrize("capacity,refetch", [(767, 2), (768, 1)])
def test_input_refetched_per_column_fold_unless_it_all_fits_in_bytes(capacity, refetch):
    """fp16 input 24×16 = 768 bytes: re-read for each of the 2 column folds unless it fits whole; weights never."""
    sizes = {"m": 24, "n": 8, "k": 16}
    assert operand_traffic(("m", "k"), sizes, [("n", 2), ("k", 4)], capacity, 2) == 24 * 16 * 2 * refetch
    assert operand_traffic(("k", "n"), sizes, [("n", 2), ("k", 4)], 0, 2) == 16 * 8 * 2


TC_YAML = """
version: 1
name: hand_tc
clock_ghz: 1.0
compute: {kind: tensor_core, units: 8, macs_per_cycle: {fp16: 256}, tile_m: 64, tile_n: 64, tile_k: 32}
memory:
  - {name: hbm, bandwidth: 100}
  - {name: l2, capacity_bytes: 4194304, bandwidth: 400}
  - {name: smem, capacity_bytes: 1048576, bandwidth: 1600}
energy: {mac_pj: {fp16: 1.0}}
"""


@pytest.mark.parametrize("l2_bw,count,split", [(400, 1, 4), (10, 1, 1), (400, 2, 2), (16, 1, 1), (16, 2, 1)])
def test_split_k_by_hand(l2_bw, count, split):
    """64×128×1024 fp16 (``count`` copies batched) on 8 SMs with 64×64×32 CTA tiles: 2·count output tiles,
    32 K-steps of 512 cycles. Splitting K over s CTAs costs ⌈2·count·s/8⌉·⌈32/s⌉·512 cycles plus writing
    and reading back s fp32 partial tiles through L2 (2·s·64·128·count·4 B at the L2 bandwidth), with
    s ≤ 8 / (2·count). Ample L2: s = 4 (one wave of 8 K-steps); a 10 B/cycle L2 makes partials too dear; at
    16 B/cycle s = 2 ties with s = 1 (8192 + 8192 = 16384 cycles) and the tie goes to the smaller split; two
    batched copies at 16 B/cycle double the partials (8192 + 16384 > 16384): no split."""
    a = load_arch(load_yaml(TC_YAML), {"memory.l2.bandwidth": l2_bw})
    m, n, k = 64, 128, 1024
    ctas = 2 * count

    def estimate(s):
        partial = 2 * s * m * n * count * 4 / l2_bw if s > 1 else 0.0
        return math.ceil(ctas * s / 8) * math.ceil(32 / s) * 512 + partial

    assert min(range(1, 8 // ctas + 1), key=lambda s: (estimate(s), s)) == split
    gemm = Gemm("g", m, n, k, count=count)
    layer = simulate(a, gemm).layers[0]
    waves = math.ceil(ctas * split / 8)
    assert layer.detail["split_k"] == split and layer.compute_cycles == waves * math.ceil(32 / split) * 512
    (mp,) = lower_layer(a, gemm).mappings
    (plain,) = lower_layer(load_arch(load_yaml(TC_YAML), {"compute.units": ctas}), gemm).mappings
    assert plain.tile["split_k"] == 1 and plain.compute_cycles == 32 * 512
    partials = split * m * n * 4 * count if split > 1 else 0
    assert mp.writes["l2"]["output"] - plain.writes["l2"]["output"] == partials
    assert mp.reads["l2"]["output"] - plain.reads["l2"]["output"] == partials
    # every SM of every wave busy on full tiles
    assert mp.mapping_efficiency == pytest.approx(m * n * k * count / (waves * 8 * 64 * 64 * math.ceil(32 / split) * 32))
    want = max(mp.compute_cycles, *(sum(mp.level_bytes(l.name)) / l.bandwidth for l in a.memory))
    assert roofline_cycles(a, mp) == want


def test_tensor_core_waves_share_the_macs_by_busy_sms():
    """320×128×1024: 5 × 2 = 10 CTAs on 8 SMs (no split: none idle in the first wave): a full wave and a
    wave of 2, each 32 K-steps of 512 cycles; the waves' MACs in the ratio 8 : 2."""
    (mp,) = lower_layer(load_arch(load_yaml(TC_YAML)), Gemm("g", 320, 128, 1024)).mappings
    dense = 320 * 128 * 1024
    assert mp.tile["split_k"] == 1 and mp.compute_cycles == 2 * 32 * 512
    assert [(g.count, g.total_macs) for g in mp.groups] == [(32, 0.8 * dense), (32, 0.2 * dense)]
    assert mp.mapping_efficiency == pytest.approx(dense / (2 * 8 * 64 * 64 * 32 * 32))


def test_forced_split_beyond_the_idle_sms_runs_in_more_waves():
    """The mapper may force a split: 64×128×1024 split 8 ways is 2 × 8 = 16 CTAs on 8 SMs, two full waves
    of ⌈32/8⌉ = 4 K-steps of 512 cycles, every SM busy; the 8 fp32 partial tiles go through L2."""
    from accelsim.model.mapping import DENSE_EXEC, map_gemm_tile

    a = load_arch(load_yaml(TC_YAML))
    mp = map_gemm_tile(a, "g", 64, 128, 1024, "fp16", 1, DENSE_EXEC, (64, 64, 32), 8, ("m", "n", "k"))
    assert mp.tile["split_k"] == 8 and mp.compute_cycles == 2 * 4 * 512
    assert [(g.count, g.total_macs) for g in mp.groups] == [(8, 64.0 * 128 * 1024)]
    assert mp.mapping_efficiency == pytest.approx(64 * 128 * 1024 / (2 * 8 * 64 * 64 * 4 * 32))


def test_split_k_on_one_memory_level_reduces_there():
    """With HBM alone the partial sums meet in HBM (s = 4 still pays: 4096 + 2·4·32768/100 < 16384). With
    nothing inside HBM to hold the output, the fp16 output is written once per K-step (32) besides."""
    doc = load_yaml(TC_YAML)
    doc["memory"] = doc["memory"][:1]
    (mp,) = lower_layer(load_arch(doc), Gemm("g", 64, 128, 1024)).mappings
    assert mp.tile["split_k"] == 4 and mp.writes["hbm"]["output"] == 64 * 128 * 2 * 32 + 4 * 64 * 128 * 4


def test_output_tile_too_big_for_its_partition_spills_through_both_levels():
    """80×8×16: an output tile (80 × 4 = 320 B) overflows the 256 B partition, so each of the 4 row folds
    writes the partial sums to DRAM and all but the first read them back through the SRAM."""
    (mp,) = lower_layer(arch(), Gemm("g", 80, 8, 16)).mappings
    size, rf = 80 * 8, 4
    assert (mp.writes["dram"]["output"], mp.reads["dram"]["output"]) == (size * rf, size * (rf - 1))
    # SRAM: the spilled partials come back in (3 × 640) and the array writes every fold (4 × 640);
    # it sends every fold out (4 × 640) and re-reads the partials for the array (3 × 640)
    assert (mp.writes["sram"]["output"], mp.reads["sram"]["output"]) == (size * 7, size * 7)


def test_innermost_level_keeps_nothing_not_even_one_byte():
    """A 1×1 output over K = 8 (two row folds): the array writes it to the SRAM after each fold."""
    (mp,) = lower_layer(arch(), Gemm("g", 1, 1, 8)).mappings
    assert mp.writes["sram"]["output"] == 2 and mp.reads["sram"]["output"] == 1 + 1


# ----------------------------------------------------------------------------- transfer time
def _mapping(a, gemm=None):
    (mp,) = lower_layer(a, gemm or Gemm("g", M, N, K)).mappings
    return mp


def test_transfer_time_takes_the_slowest_level_not_the_sum():
    """DRAM reads 896 B at 4 B/cycle (224 cycles), SRAM 896 B at 8 (112): the load is 224 cycles, 28 a tile
    (the sum, 336, would give 42 a tile and a load-bound pipeline)."""
    a = arch(**{"memory.dram.bandwidth": 4, "memory.sram.bandwidth": 8})
    load, store = _transfer_time(a, _mapping(a))
    assert (load, store) == (224.0, 48.0)
    cycles = 28 + 34 + 6 + 7 * 34
    layer = simulate(a, Gemm("g", M, N, K)).layers[0]
    assert layer.cycles == cycles and layer.stall_cycles == cycles - 8 * 34


def test_write_back_has_its_own_channel_and_counts():
    """SRAM write-back 1536 B at 2 B/cycle: 768 cycles, 96 a tile, slower than the 34-cycle fold: the writer
    sets the pace. Reads are unaffected (the read bandwidth stays 64)."""
    a = arch(**{"memory.sram.write_bandwidth": 2})
    load, store = _transfer_time(a, _mapping(a))
    assert (load, store) == (56.0, 768.0)
    cycles = 7 + 34 + 96 + 7 * 96
    assert simulate(a, Gemm("g", M, N, K)).layers[0].cycles == cycles


def test_write_bandwidth_defaults_to_the_read_bandwidth():
    """Without ``write_bandwidth`` the write-back shares the level's bandwidth figure: DRAM 192 B at 16 = 12,
    SRAM 1536 B at 64 = 24 cycles."""
    doc = load_yaml(ARCH_YAML)
    for lvl in doc["memory"]:
        del lvl["write_bandwidth"]
    a = load_arch(doc)
    assert _transfer_time(a, _mapping(a)) == (56.0, 24.0)
    assert simulate(a, Gemm("g", M, N, K)).layers[0].cycles == 7 + 34 + 3 + 7 * 34


def test_load_bound_pipeline_runs_at_the_load_rate():
    """DRAM at 1 B/cycle: 896 cycles of loads, 112 a tile > 34: cycles = 112 + 34 + 6 + 7·112."""
    a = arch(**{"memory.dram.bandwidth": 1})
    assert _transfer_time(a, _mapping(a)) == (896.0, 48.0)
    assert simulate(a, Gemm("g", M, N, K)).layers[0].cycles == 112 + 34 + 6 + 7 * 112


def test_no_traffic_costs_no_cycles():
    """A mapping that moves no bytes (all operands already on chip) takes exactly its compute cycles: no
    fill, no drain, not even a rounded-up cycle."""
    a = arch()
    zero = {lvl.name: dict.fromkeys(("input", "weight", "output"), 0.0) for lvl in a.memory}
    mp = Mapping("t", 1, 1, 1, "int8", {}, (), [TileGroup(3, 10.0, 1.0)], 1.0, 3.0, 3.0, zero,
                 {k: dict(v) for k, v in zero.items()}, 3.0)
    assert _transfer_time(a, mp) == (0.0, 0.0)
    t = run_mapping(a, mp)
    assert (t.cycles, t.compute_cycles, t.stall_cycles) == (30.0, 30.0, 0.0)


def test_double_buffered_pes_run_folds_back_to_back_by_hand():
    """stationary_buffers = 2: the 8 folds of M = 24 take max(24, 4) cycles each, back to back, and the
    array fills and drains once (2·4 + 4 − 2 = 10 cycles, no bytes) after them; the traffic is
    unchanged. The pipeline: the first load (7), 8 folds of 24 (their loads of 7 and stores of 6 hide
    under them), the fill of 10 (the last store hides under it)."""
    rd, wr = traffic(K)
    layer = simulate(arch(**{"compute.stationary_buffers": 2}), Gemm("g", M, N, K)).layers[0]
    cycles = 7 + 8 * 24 + 10
    actions = {**memory_actions(rd, wr), "compute.mac.int8": M * N * K, "leakage.cycle": cycles}
    check(layer, cycles, 8 * 24 + 10, actions)
    assert layer.detail["tiles"] == 8


@pytest.mark.parametrize("dataflow,shape,fill", [("ws", (3, 8, 16), 10), ("is", (24, 3, 16), 10), ("os", (3, 8, 3), 6)])
def test_double_buffered_short_streams_wait_for_the_next_preload(dataflow, shape, fill):
    """A stream of 3 (M on WS, N on IS, K on OS) on 4 rows still takes ``rows`` cycles per fold: the next
    preload or drain has to finish. The fill is SCALE-Sim's fold less its stream (OS preloads nothing)."""
    (mp,) = lower_layer(arch(**{"compute.stationary_buffers": 2, "compute.dataflow": dataflow}),
                        Gemm("g", *shape)).mappings
    assert mp.compute_cycles == mp.tiles * ROWS + fill
    assert mp.groups[-1] == TileGroup(1, float(fill), 0.0)


def test_double_buffers_need_the_tile_pipeline():
    """SCALE-Sim's staging replays single-buffered PEs: the two together are refused, naming the field."""
    from accelsim.errors import ConfigError

    with pytest.raises(ConfigError, match="stationary_buffers = 2 needs staging: pipeline"):
        arch(**{"compute.stationary_buffers": 2, "compute.staging": "scalesim"})
    with pytest.raises(ConfigError, match="stationary_buffers"):
        arch(**{"compute.stationary_buffers": 3})


@pytest.mark.parametrize("dataflow,fold,fill", [("ws", lambda s: 2 * 4 + 8 + s - 2, 0), ("os", lambda s: 4 + 8 + s - 2, 0),
                                                 ("ws", lambda s: max(s, 4), 2 * 4 + 8 - 2),
                                                 ("os", lambda s: max(s, 4), 4 + 8 - 2)],
                         ids=["ws-single", "os-single", "ws-double", "os-double"])
def test_folds_on_a_4_row_8_column_array(dataflow, fold, fill):
    """Rows and columns play different parts: on 4 rows × 8 columns a single-buffered WS fold costs
    2·4 + 8 + stream − 2 and an OS fold 4 + 8 + stream − 2; double-buffered, max(stream, 4) each and
    the single-buffered overhead once. Streams of 24 (WS: M) and 3 (OS: K, under the 4 rows)."""
    buffers = 2 if fill else 1
    a = arch(**{"compute.cols": 8, "compute.dataflow": dataflow, "compute.stationary_buffers": buffers})
    stream = 24 if dataflow == "ws" else 3
    (mp,) = lower_layer(a, Gemm("g", 24, 12, 16) if dataflow == "ws" else Gemm("g", 6, 12, 3)).mappings
    assert mp.compute_cycles == mp.tiles * fold(stream) + fill
