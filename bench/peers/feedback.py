"""Feed an accelsim searched mapping back to the peers: the same mapping as a ZigZag temporal ordering and an
AccelForge LoopTree, and each peer's cycles and dynamic energy for it (no search on the peer side).

The input is the mapping JSON of /work/shared-mapper/MAPPING_FORMAT.md (`layer["mapping"]`, or a layer holding
it): three levels, outermost first (off-chip, on-chip, "array"). The translation is stdlib-only so CI can test
it without the peers; running the peers needs their venvs (bench/peers/setup.sh).

    python bench/peers/feedback.py MAPPING.json [--peers zigzag,accelforge] [--envs /work/peers-env]
    python bench/peers/feedback.py REPORT.json --layer conv2_1_b     # a layer of `simulate --mapper search`

ZigZag gets the loops innermost first and allocates them to its memories itself. AccelForge gets every loop
and, per SRAM operand, a Storage node as high in the nest as its tile fits the 64 KiB SRAM (right under the
off-chip loops for a tile accelsim's search made fit; deeper, streaming, for accelsim's fixed mapping, whose
whole-layer tiles do not fit), with the SRAM order of the arch set to match.
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ARRAY = 32                      # rows x cols of systolic_ws_32x32 (and of the peers' models of it)
SRAM_BYTES = 65536              # each of the three SRAM partitions; int8, so bytes = elements
GEMM_DIMS = ("m", "n", "k")
CONV_DIMS = ("b", "oy", "ox", "c", "kout", "fy", "fx")
ZZ_NAME = {"m": "B", "n": "K", "k": "C", "b": "B", "oy": "OY", "ox": "OX", "c": "C", "kout": "K",
           "fy": "FY", "fx": "FX"}
AF_NAME = {"gemm": {"m": "m", "n": "n", "k": "k"},
           "conv": {"b": "n", "oy": "p1", "ox": "q1", "c": "c1", "kout": "m1", "fy": "r1", "fx": "s1"}}
AF_TENSOR = {"gemm": {"input": "A", "weight": "B", "output": "Z"},
             "conv": {"input": "I1", "weight": "W1", "output": "T1"}}
SRAM_OF = {"output": "O", "weight": "W", "input": "I"}
RELEVANT = {"gemm": {"input": "mk", "weight": "kn", "output": "mn"},
            "conv": {"input": ("b", "oy", "ox", "c", "fy", "fx"), "weight": ("c", "kout", "fy", "fx"),
                     "output": ("b", "oy", "ox", "kout")}}


class FeedbackError(ValueError):
    """A mapping the format or a peer cannot express; the message names the field and the value."""


def _loops(level: dict, where: str, allowed) -> list:
    loops = level.get("loops", [])
    if not isinstance(loops, list):
        raise FeedbackError(f"{where}.loops: expected a list of [dim, count], got {loops!r}")
    out = []
    for i, lp in enumerate(loops):
        ok = (isinstance(lp, list) and len(lp) == 2 and lp[0] in allowed and isinstance(lp[1], int)
              and not isinstance(lp[1], bool) and lp[1] >= 1)
        if not ok:
            raise FeedbackError(f"{where}.loops[{i}]: expected [dim in {sorted(allowed)}, count >= 1], got {lp!r}")
        out.append((lp[0], lp[1]))
    return out


def _pixel_loops(dims: dict, count: int) -> list:
    """A loop over tiles of the flattened output pixels (b, oy, ox; ox innermost) as loops over b, oy, ox.

    Exact only when a tile is whole images, whole rows or a divisor of a row; anything else is refused.
    """
    b, oy, ox = dims["b"], dims["oy"], dims["ox"]
    t = math.ceil(b * oy * ox / count)
    if t % (oy * ox) == 0:
        return [("b", math.ceil(b / (t // (oy * ox))))]
    if t % ox == 0 and oy % (t // ox) == 0:
        return [("b", b), ("oy", oy // (t // ox))]
    if ox % t == 0:
        return [("b", b), ("oy", oy), ("ox", ox // t)]
    raise FeedbackError(f"nest[0].loops: [\"pixels\", {count}] gives tiles of {t} pixels, not whole images, whole "
                        f"rows or a divisor of a row ({oy} x {ox}); the peers tile oy and ox")


def parse(doc) -> dict:
    """Check one mapping (or a layer with "mapping") and return {kind, dims, stride, dram, sram, stream, keep}."""
    mp = doc.get("mapping", doc) if isinstance(doc, dict) else None
    if not isinstance(mp, dict) or "problem" not in mp or "nest" not in mp:
        raise FeedbackError("mapping: expected an object with 'problem' and 'nest' (or a layer with 'mapping')")
    prob = mp["problem"]
    kind = prob.get("kind") if isinstance(prob, dict) else None
    if kind not in ("gemm", "conv"):
        raise FeedbackError(f"problem.kind: expected 'gemm' or 'conv', got {kind!r}")
    names = GEMM_DIMS if kind == "gemm" else CONV_DIMS
    dims = prob.get("dims")
    if not isinstance(dims, dict) or any(not isinstance(dims.get(d), int) or dims[d] < 1 for d in names):
        raise FeedbackError(f"problem.dims: expected positive integers for {list(names)}, got {dims!r}")
    stride = prob.get("stride", [1, 1]) if kind == "conv" else [1, 1]
    if not (isinstance(stride, list) and len(stride) == 2 and all(isinstance(s, int) and s >= 1 for s in stride)):
        raise FeedbackError(f"problem.stride: expected [sy, sx] positive integers, got {stride!r}")
    nest = mp["nest"]
    if not (isinstance(nest, list) and len(nest) == 3 and all(isinstance(lv, dict) for lv in nest)
            and nest[2].get("level") == "array"):
        raise FeedbackError("nest: expected three levels (off-chip, on-chip, 'array'), got "
                            f"{[lv.get('level') if isinstance(lv, dict) else lv for lv in nest]!r}")
    outer = ("m", "n", "k") if kind == "gemm" else ("b", "oy", "ox", "c", "kout", "pixels")
    fold = ("n", "k") if kind == "gemm" else ("kout", "fy", "fx", "c")
    dram = _loops(nest[0], "nest[0]", outer)
    if kind == "conv":
        dram = [lp for d, c in dram for lp in (_pixel_loops(dims, c) if d == "pixels" else [(d, c)])]
    sram = _loops(nest[1], "nest[1]", fold)
    spatial = nest[2].get("spatial")
    want = [["k", ARRAY], ["n", ARRAY]]
    if spatial != want:
        raise FeedbackError(f"nest[2].spatial: the peers model a 32x32 WS array, expected {want}, got {spatial!r}")
    stream = _loops(nest[2], "nest[2]", ("m",))
    if len(stream) != 1:
        raise FeedbackError(f"nest[2].loops: expected one streamed [\"m\", count], got {nest[2].get('loops')!r}")
    keep = mp.get("keep", {}).get("sram", ["input", "weight", "output"]) if isinstance(mp.get("keep"), dict) \
        else ["input", "weight", "output"]
    if sorted(keep) != ["input", "output", "weight"]:
        raise FeedbackError(f"keep.sram: the peers' models keep every operand in its SRAM, got {keep!r}")
    count = prob.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FeedbackError(f"problem.count: expected a positive integer (identical GEMMs run one after another), got {count!r}")
    out = {"kind": kind, "dims": {d: dims[d] for d in names}, "stride": stride, "dram": dram, "sram": sram,
           "stream": stream[0][1], "tile": _given_tile(nest[1].get("tile"), dims, dram), "count": count,
           "kept": nest[0].get("kept", {})}
    _check_fold(out)
    return out


def _given_tile(tile, dims: dict, dram: list) -> dict:
    """The on-chip tile the mapper states (nest[1].tile), where it differs from ceil(dim / count) and is
    consistent with the counts (ceil(dim / tile) tiles; accelsim rounds tiles up to whole folds of 32)."""
    if tile is None:
        return {}
    if not isinstance(tile, dict):
        raise FeedbackError(f"nest[1].tile: expected an object of dim sizes, got {tile!r}")
    out = {}
    for d in {d for d, c in dram if c > 1}:
        if d not in tile:
            continue
        t, count = tile[d], math.prod(c for dd, c in dram if dd == d)
        if not isinstance(t, int) or t < 1 or math.ceil(dims[d] / t) != count:
            raise FeedbackError(f"nest[1].tile.{d}: {t!r} does not cut {d} = {dims[d]} into the {count} tiles "
                                "of the off-chip loops")
        out[d] = t
    return out


def tiles(m: dict) -> tuple:
    """(on-chip tile, fold tile) per dim: nest[1].tile where given, else dim / product of the counts so far
    (ceil for a ragged last tile)."""
    sram = dict(m["dims"])
    for d, c in m["dram"]:
        sram[d] = math.ceil(sram[d] / c)
    sram.update(m["tile"])
    fold = dict(sram)
    for d, c in m["sram"]:
        fold[d] = math.ceil(fold[d] / c)
    return sram, fold


def _check_fold(m: dict) -> None:
    _, fold = tiles(m)
    if m["kind"] == "gemm":
        rows, cols, pix = fold["k"], fold["n"], fold["m"]
    else:
        rows, cols, pix = fold["c"], fold["kout"], fold["b"] * fold["oy"] * fold["ox"]
        if fold["fy"] * fold["fx"] != 1:
            raise FeedbackError(f"nest[1].loops: the peers take folds of one (fy, fx) window position "
                                f"(c a multiple of 32), got fold tile fy {fold['fy']} fx {fold['fx']}")
    if rows > ARRAY or cols > ARRAY:
        raise FeedbackError(f"nest[1].loops: fold tile {rows} rows x {cols} cols exceeds the 32x32 array")
    if pix != m["stream"]:
        raise FeedbackError(f"nest[2].loops: streams {m['stream']} rows but the fold tile has {pix}")


def zigzag_temporal(m: dict) -> list:
    """The mapping as ZigZag's temporal_ordering (innermost first) under its K32 x C32 spatial unrolling.

    ZigZag needs exact factors: every dim must equal the product of its loop counts (times 32 for the two
    spatial dims), so ragged tiles and folds smaller than the array are refused.
    """
    if m["kind"] == "gemm":
        stream = [("m", m["stream"])]
        spatial = {"n": ARRAY, "k": ARRAY}
    else:
        _, fold = tiles(m)
        stream = [(d, fold[d]) for d in ("ox", "oy", "b")]
        spatial = {"kout": ARRAY, "c": ARRAY}
    loops = stream + list(reversed(m["sram"])) + list(reversed(m["dram"]))
    for d, size in m["dims"].items():
        prod = math.prod(c for dd, c in loops if dd == d) * spatial.get(d, 1)
        if prod != size:
            raise FeedbackError(f"problem.dims.{d}: {size} is not the product of its loop counts and array side "
                                f"({prod}); ZigZag cannot express ragged tiles")
    return [[ZZ_NAME[d], c] for d, c in loops if c > 1]


def _operand_bytes(kind: str, op: str, t: dict, stride) -> int:
    if kind == "gemm":
        return {"input": t["m"] * t["k"], "weight": t["k"] * t["n"], "output": t["m"] * t["n"]}[op]
    if op == "weight":
        return t["fy"] * t["fx"] * t["c"] * t["kout"]
    if op == "output":
        return t["b"] * t["oy"] * t["ox"] * t["kout"]
    return t["b"] * t["c"] * ((t["oy"] - 1) * stride[0] + t["fy"]) * ((t["ox"] - 1) * stride[1] + t["fx"])


def accelforge_looptree(m: dict) -> tuple:
    """(LoopTree mapping YAML, SRAM order outermost first) of the mapping for shared/peers/accelforge's arch.

    Each SRAM operand sits right under the last off-chip loop that indexes it (accelsim's on-chip tile, held
    across the innermost off-chip loops it does not depend on) if that tile fits 64 KiB, else under the first
    fold loop or streaming split (output rows, then pixels) where it does.
    """
    kind, names, tensor = m["kind"], AF_NAME[m["kind"]], AF_TENSOR[m["kind"]]
    tile = dict(m["dims"])
    loops, states = [], []                      # loops: (dim, tile after it), outer -> inner
    last = {d: i for i, (d, c) in enumerate(m["dram"]) if c > 1}
    for i, (d, c) in enumerate(m["dram"] + m["sram"]):
        if c > 1:
            tile[d] = m["tile"][d] if d in m["tile"] and last.get(d) == i else math.ceil(tile[d] / c)
            loops.append((d, tile[d]))
    first = sum(1 for _, c in m["dram"] if c > 1)   # the off-chip loops: SRAM tiles start under them
    n_folds = len(loops)
    for d in (("m",) if kind == "gemm" else ("b", "oy", "ox")):
        if tile[d] > 1:
            loops.append((d, 1))
    t = dict(m["dims"])
    for d, ts in loops:
        states.append(dict(t))
        t[d] = ts
    states.append(t)
    place = {}
    for op in ("output", "weight", "input"):
        # Stationary over the innermost off-chip loops that do not index it (accelsim refetches a tile only
        # when such a loop sits outside one that does), so it goes right under its last relevant one.
        top = max([i + 1 for i, (d, _) in enumerate(loops[:first]) if d in RELEVANT[kind][op]], default=0)
        fits = [i for i in range(top, len(states))
                if _operand_bytes(kind, op, states[i], m["stride"]) <= SRAM_BYTES]
        if not fits:
            raise FeedbackError(f"nest: no {op} tile fits the {SRAM_BYTES} B SRAM even one pixel at a time")
        place[op] = fits[0]
    n_tree = max(max(place.values()), n_folds)  # streaming splits not needed above a Storage stream below it
    order = "".join(SRAM_OF[op] for op in sorted(place, key=lambda op: place[op]))
    lines = [f"  - !Storage {{tensors: [{', '.join(tensor[o] for o in ('output', 'weight', 'input'))}], "
             "component: DRAM}"]
    for i in range(n_tree + 1):
        lines += [f"  - !Storage {{tensors: [{tensor[op]}], component: SRAM_{SRAM_OF[op]}}}"
                  for op in sorted(place, key=lambda op: "OWI".index(SRAM_OF[op])) if place[op] == i]
        if i < n_tree:
            d, ts = loops[i]
            lines.append(f"  - !Temporal {{rank_variable: {names[d]}, tile_shape: {ts}}}")
    lines.append(f"  - !Spatial {{rank_variable: {names['k' if kind == 'gemm' else 'c']}, tile_shape: 1, "
                 "component: PE, name: rows}")
    lines.append(f"  - !Spatial {{rank_variable: {names['n' if kind == 'gemm' else 'kout']}, tile_shape: 1, "
                 "component: PE, name: cols}")
    lines.append(f"  - !Storage {{tensors: [{tensor['weight']}], component: Register}}")
    lines += [f"  - !Temporal {{rank_variable: {names[d]}, tile_shape: 1}}" for d, _ in loops[n_tree:]]
    lines.append(f"  - !Compute {{einsum: {tensor['output']}, component: MAC}}")
    return "mapping:\n  nodes:\n" + "\n".join(lines) + "\n", order


def _peer(envs: str, request: dict) -> dict:
    env = os.path.join(envs, request["peer"])
    proc = subprocess.run([os.path.join(env, "bin", "python"), os.path.join(HERE, "peer_eval.py")],
                          input=json.dumps(request), capture_output=True, text=True,
                          env={**os.environ, "PATH": os.path.join(env, "bin") + os.pathsep + os.environ["PATH"]})
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def feedback(m: dict, peers, envs: str) -> dict:
    """Each peer's cycles and dynamic energy (pJ) for the parsed mapping, with what it was given: one problem
    evaluated, times ``count`` when the layer runs that many in a row. The peers walk their loops in raster
    order; ``kept`` are the bytes accelsim's serpentine walk does not fetch again (the difference expected)."""
    out = {"problem": {"kind": m["kind"], "dims": m["dims"], "stride": m["stride"]}, "count": m["count"],
           "kept": m["kept"]}
    problem = out["problem"]
    for peer in peers:
        try:
            if peer == "zigzag":
                given = {"spatial": {"D1": [f"K, {ARRAY}"], "D2": [f"C, {ARRAY}"]}, "temporal": zigzag_temporal(m)}
            else:
                text, order = accelforge_looptree(m)
                given = {"mapping_yaml": text, "order": order}
        except FeedbackError as e:
            out[peer] = {"error": f"cannot express: {e}"}
            continue
        got = _peer(envs, {"peer": peer, "problem": problem, **given})
        for key in ("cycles", "energy_pj", "edp"):
            if key in got:
                got[key] *= m["count"] ** (2 if key == "edp" else 1)
        out[peer] = {**got, "given": given}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mapping", help="accelsim mapping JSON (MAPPING_FORMAT.md), a layer, or a whole report")
    p.add_argument("--layer", help="the layer to take from a report (`simulate --mapper search --out R.json`)")
    p.add_argument("--peers", default="zigzag,accelforge")
    p.add_argument("--envs", default=os.environ.get("PEERS_ENV", "/work/peers-env"))
    args = p.parse_args(argv)
    peers = args.peers.split(",")
    try:
        bad = [x for x in peers if x not in ("zigzag", "accelforge")]
        if bad:
            raise FeedbackError(f"--peers: unknown peer {bad[0]!r} (zigzag, accelforge)")
        with open(args.mapping) as f:
            doc = json.load(f)
        if isinstance(doc, dict) and isinstance(doc.get("layers"), list):
            named = {lay.get("name"): lay for lay in doc["layers"] if isinstance(lay, dict)}
            if args.layer not in named:
                raise FeedbackError(f"layers: --layer must name one of the report's layers, got {args.layer!r}")
            doc = named[args.layer]
        m = parse(doc)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.mapping}: {e}", file=sys.stderr)
        return 2
    except FeedbackError as e:
        print(f"{args.mapping}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(feedback(m, peers, args.envs), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
