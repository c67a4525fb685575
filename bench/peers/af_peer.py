"""AccelForge side of the peer bench: accelsim layer shapes as AccelForge workloads, its mapper, fixed mappings.

Runs only in the AccelForge venv (bench/peers/setup.sh, with the stand-in `dot` on PATH); imports accelforge,
yaml and the stdlib. The hardware is the shared model in shared/peers/accelforge (SRAM order O, W, I outermost
first, or any order through accelsim_ws_32x32_order.arch.yaml). Units out: cycles (latency at 1 GHz; AccelForge
overlaps everything, so these are lower bounds) and dynamic energy in pJ.
"""
import contextlib
import os
import tempfile
import time

ORDERS = ("OWI", "OIW", "WOI", "WIO", "IOW", "IWO")


def workload_yaml(problem: dict) -> str:
    """One accelsim problem as an AccelForge workload (one Einsum; tensors A/B/Z or I1/W1/T1 as the shared files).

    GEMM: Z[m,n] = A[m,k]·B[k,n]. Conv: T1[p1,q1,n,m1] = I1[n,c1,H,W]·W1[r1,s1,c1,m1] with H = p1·stride + r1;
    a 1x1 filter drops r1/s1 (size-1 ranks), a batch of 1 keeps n out of the iteration space.
    """
    d = problem["dims"]
    if problem["kind"] == "gemm":
        return ("workload:\n  bits_per_value: {All: 8}\n  einsums:\n"
                '  - einsum: "Z[m, n] = A[m, k] * B[k, n]"\n    iteration_space_shape:\n'
                f"    - 0 <= m < {d['m']}\n    - 0 <= n < {d['n']}\n    - 0 <= k < {d['k']}\n"
                "    renames: {input: A, weight: B, output: Z}\n")
    sy, sx = problem.get("stride", [1, 1])
    window = d["fy"] > 1 or d["fx"] > 1
    h = f"p1 * {sy}" if sy > 1 else "p1"
    w = f"q1 * {sx}" if sx > 1 else "q1"
    if window:
        inp = f"I1[n, c1, H: {h} + r1, W: {w} + s1]"
        wgt = "W1[r1, s1, c1, m1]"
    else:
        inp = f"I1[n, c1, H: {h}, W: {w}]" if (sy > 1 or sx > 1) else "I1[n, c1, p1, q1]"
        wgt = "W1[c1, m1]"
    ranks = [("p1", d["oy"]), ("q1", d["ox"]), ("c1", d["c"]), ("m1", d["kout"])]
    if window:
        ranks += [("r1", d["fy"]), ("s1", d["fx"])]
    if d["b"] > 1:
        ranks.append(("n", d["b"]))
    shape = "".join(f"    - 0 <= {r} < {s}\n" for r, s in ranks)
    return ("workload:\n  bits_per_value: {All: 8}\n" + (f"  rank_sizes: {{N: {d['b']}}}\n" if d["b"] == 1 else "")
            + "  einsums:\n" + f'  - einsum: "T1[p1, q1, n, m1] = {inp} * {wgt}"\n'
            + "    iteration_space_shape:\n" + shape + "    renames: {input: I1, weight: W1, output: T1}\n")


def _spec(arch: str, problem: dict, mapping: str | None = None, order: str | None = None):
    import accelforge as af
    with tempfile.NamedTemporaryFile("w", suffix=".workload.yaml", delete=False) as f:
        f.write(workload_yaml(problem))
    try:
        files = [arch, f.name] + ([mapping] if mapping else [])
        kw = {"jinja_parse_data": {"SRAM_ORDER": order}} if order else {}
        return af.Spec.from_yaml(*files, **kw)
    finally:
        os.unlink(f.name)


def mapping_text(mapping) -> str:
    """A LoopTree as one line per node, in the shared *_fixed.mapping.yaml notation."""
    out = []
    for node in mapping.nodes:
        kind = type(node).__name__
        if kind == "Storage":
            out.append(f"Storage {list(node.tensors)} @{node.component}")
        elif kind in ("Temporal", "Spatial"):
            where = f" @{node.component}.{node.name}" if kind == "Spatial" else ""
            out.append(f"{kind} {node.rank_variable} tile {node.tile_shape}{where}")
        elif kind == "Compute":
            out.append(f"Compute @{node.component}")
    return "; ".join(out)


def _record(m, wall: float, cpu: float) -> dict:
    cycles = float(m.data["Total<SEP>latency"].iloc[0]) * 1e9
    energy = float(m.data["Total<SEP>dynamic_energy"].iloc[0]) * 1e12
    return {"cycles": round(cycles, 3), "energy_pj": energy, "edp": energy * cycles, "search_wall_s": round(wall, 3),
            "search_cpu_s": round(cpu, 3), "mapping": mapping_text(m.mapping())}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def search(problem: dict, arch: str, order: str | None = None, jobs: int = 1) -> dict:
    """AccelForge's mapper with the EDP objective for one layer (arch: the plain or the _order arch file).

    One job by default: the box is shared, and in-process work keeps search_cpu_s complete (worker
    processes would not be counted).
    """
    import accelforge as af
    af.set_n_parallel_jobs(jobs, print_message=False)
    t0, c0 = time.time(), _cpu()
    spec = _spec(arch, problem, order=order)
    spec.mapper.metrics = af.Metrics.ENERGY_DELAY_PRODUCT
    with tempfile.TemporaryDirectory(prefix="af_") as tmp, contextlib.chdir(tmp):  # it writes mapping.svg to cwd
        m = spec.map_workload_to_arch(print_progress=False)
    return _record(m, time.time() - t0, _cpu() - c0)


def evaluate(problem: dict, arch: str, mapping_yaml: str, order: str | None = None) -> dict:
    """AccelForge's cost of one given LoopTree mapping (YAML text); no search (order: for the _order arch)."""
    with tempfile.NamedTemporaryFile("w", suffix=".mapping.yaml", delete=False) as f:
        f.write(mapping_yaml)
    try:
        t0, c0 = time.time(), _cpu()
        spec = _spec(arch, problem, mapping=f.name, order=order)
        with tempfile.TemporaryDirectory(prefix="af_") as tmp, contextlib.chdir(tmp):
            r = spec.evaluate_mapping()
        cycles, energy = float(r.latency()) * 1e9, float(r.energy()) * 1e12
        return {"cycles": round(cycles, 3), "energy_pj": energy, "edp": energy * cycles,
                "search_wall_s": round(time.time() - t0, 3), "search_cpu_s": round(_cpu() - c0, 3)}
    finally:
        os.unlink(f.name)
