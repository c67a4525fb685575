"""ZigZag side of the peer bench: accelsim layer shapes as ZigZag workloads, LOMA/SALSA search, fixed mappings.

Runs only in the ZigZag venv (bench/peers/setup.sh); imports zigzag, yaml and the stdlib. The hardware and the
WS spatial unrolling are the shared models in shared/peers/zigzag (K over the 32 columns, C down the 32 rows).
Units out: cycles (ZigZag's latency_total2, on/off-loading included) and dynamic energy in pJ.
"""
import logging
import os
import tempfile
import time

PRECISION = {"W": 8, "I": 8, "O": 8, "O_final": 8}


def workload(problem: dict, name: str = "layer") -> list:
    """One accelsim problem ({"kind": "gemm"|"conv", "dims": ...}) as a one-layer ZigZag workload.

    GEMM C[m,n] = A[m,k]·B[k,n] becomes ZigZag's O[b][k] += W[k][c]·I[b][c] with B=m, K=n, C=k.
    """
    d = problem["dims"]
    if problem["kind"] == "gemm":
        return [dict(id=0, name=name, operator_type="Gemm", equation="O[b][k]+=W[k][c]*I[b][c]",
                     loop_dims=["B", "K", "C"], loop_sizes=[d["m"], d["n"], d["k"]],
                     operand_precision=dict(PRECISION), operand_source={"I": 0, "W": 0})]
    sy, sx = problem.get("stride", [1, 1])
    return [dict(id=0, name=name, operator_type="Conv",
                 equation="O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
                 dimension_relations=[f"ix={sx}*ox+1*fx", f"iy={sy}*oy+1*fy"],
                 loop_dims=["B", "K", "C", "OY", "OX", "FY", "FX"],
                 loop_sizes=[d["b"], d["kout"], d["c"], d["oy"], d["ox"], d["fy"], d["fx"]],
                 operand_precision=dict(PRECISION), operand_source={"I": 0, "W": 0})]


def _run(wl, hardware: str, mapping: str, **kw) -> dict:
    from zigzag.api import get_hardware_performance_zigzag
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="zz_") as tmp:
        t0, c0 = time.time(), _cpu()
        _, _, cmes = get_hardware_performance_zigzag(wl, hardware, mapping, opt="EDP", dump_folder=tmp,
                                                     loma_show_progress_bar=False, **kw)
        wall, cpu = time.time() - t0, _cpu() - c0
    cme = cmes[0][1][0][0]
    cycles, energy = float(cme.latency_total2), float(cme.energy_total)
    return {"cycles": cycles, "energy_pj": energy, "edp": energy * cycles, "search_wall_s": round(wall, 3),
            "search_cpu_s": round(cpu, 3),
            "mapping": f"spatial {cme.spatial_mapping}; temporal per operand, memory levels innermost first "
                       f"{cme.temporal_mapping}",
            "ideal_cycles": float(cme.ideal_cycle), "onloading_cycles": float(cme.data_onloading_cycle),
            "offloading_cycles": float(cme.data_offloading_cycle)}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (SALSA forks workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def search(problem: dict, hardware: str, mapping: str, engine: str, lpf_limit: int = 6) -> dict:
    """ZigZag's own temporal-mapping search (LOMA or SALSA) for one layer, best EDP kept by ZigZag."""
    return _run(workload(problem), hardware, mapping, temporal_mapping_search_engine=engine, lpf_limit=lpf_limit)


def evaluate(problem: dict, hardware: str, spatial: dict, temporal: list) -> dict:
    """ZigZag's cost of one given temporal ordering (innermost first, [[DIM, count], ...]); no search."""
    import yaml
    entry = {"name": "default", "spatial_mapping": spatial, "temporal_ordering": temporal,
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump([entry], f, sort_keys=False)
    try:
        return _run(workload(problem), hardware, f.name)
    finally:
        os.unlink(f.name)
