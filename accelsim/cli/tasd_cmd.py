"""`accelsim tasd ...`: TASD decomposition reports and the TASDER layer-wise search."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from accelsim.checks import MAX_REPEATS, ensure_writable
from accelsim.cli._mapping import MapperKind, MapperOpt, Objective, ObjectiveOpt, mapper_of
from accelsim.cli._common import Format, FormatOpt, on_interrupt, print_json, print_table
from kernels.errors import InputError

# Library modules are imported inside the commands: start-up time (every command module loads for `--help`).
__all__ = ["decompose_command", "register", "search_command", "tasd_app"]

tasd_app = typer.Typer(
    name="tasd",
    help="TASD: approximate tensors by series of N:M-structured terms.",
    no_args_is_help=True,
)


@tasd_app.command("decompose")
def decompose_command(
    input: Path = typer.Argument(..., help="tensor: .npy or .safetensors", show_default=False),
    tensor: Optional[str] = typer.Option(None, "--tensor", help="tensor name inside a .safetensors file"),
    series: Optional[list[str]] = typer.Option(
        None, "--series", help="TASD series such as 2:4+1:4; repeat for several (default: a standard set)"
    ),
    axis: int = typer.Option(-1, "--axis", help="reduction axis the N:M groups run along"),
    fmt: Format = FormatOpt,
) -> None:
    """Relative Frobenius error and executed density of each series, term by term."""
    # Imported here: numpy and the TASD code are start-up that `accelsim --help` skips.
    from accelsim.codesign.accuracy import DEFAULT_WEIGHT_SERIES, decompose_report
    from accelsim.codesign.tensors import load_tensor

    a = load_tensor(input, tensor)
    reports = decompose_report(a, series or list(DEFAULT_WEIGHT_SERIES), axis=axis)
    if fmt == Format.json:
        print_json({"input": str(input), "tensor": tensor, "shape": list(a.shape), "axis": axis, "series": reports})
        return
    rows = [
        [r["series"], r["density"], r["nnz_fraction"], r["rel_error"],
         " → ".join(f"{t['rel_error']:.4f}" for t in r["terms"])]
        for r in reports
    ]
    print_table(
        f"TASD of {input.name}{f' tensor {tensor}' if tensor else ''} {tuple(a.shape)}, axis {axis}",
        ["series", "density", "nnz fraction", "rel. error", "error after each term"],
        rows,
        caption="density: fraction of dense MACs executed (sum of N/M); error: ‖A − Â‖F / ‖A‖F",
    )


@tasd_app.command("search")
def search_command(
    arch: str = typer.Option(..., "--arch", help="arch config YAML or built-in name"),
    workload: str = typer.Option(..., "--workload", help="minilm, a built-in network, topology CSV, workload YAML or .onnx model"),
    budget: Optional[float] = typer.Option(None, "--budget", help="min mean cosine to the unmodified model (needs --weights minilm; default 0.99 there)"),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="per-layer cap on the relative error"),
    weights: Optional[str] = typer.Option(None, "--weights", help="'minilm' (real weights and activations), a .safetensors file or the --workload .onnx model"),
    prune: float = typer.Option(0.0, "--prune", help="magnitude-prune the weights (real or synthetic) to this sparsity first"),
    max_terms: Optional[int] = typer.Option(None, "--max-terms", help="at most this many terms per series"),
    series: Optional[list[str]] = typer.Option(None, "--series", help="restrict candidates to these series (repeatable)"),
    refine: int = typer.Option(0, "--refine", help="extra forward passes for greedy per-layer relaxation (with --budget)"),
    params: Optional[list[str]] = typer.Option(None, "--param", help="network parameter name=value, e.g. seq_len=128"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the plan (.json, runs with `accelsim run`) or a .parquet table"),
    layout: str = typer.Option("element", "--layout", help="N:M layout of one-term series in the plan: element or vector"),
    sparse_tc: bool = typer.Option(False, "--sparse-tc", help="plan 2:4 weights on sparse tensor cores (cuSPARSELt)"),
    mapper: MapperKind = MapperOpt,
    objective: Objective = ObjectiveOpt,
    fmt: Format = FormatOpt,
) -> None:
    """TASDER: per-layer weight/activation TASD series with minimum EDP within the error budget."""
    # Imported here (start-up, as in decompose); minilm and magnitude only on the paths that use them.
    from accelsim.model.arch import parse_overrides
    from accelsim.codesign.tasder import PROXY_MEANINGS, search, write_result
    from accelsim.codesign.sources import load_weight_file
    from accelsim.model.workloads import as_network

    if layout not in ("element", "vector"):
        raise InputError(f"--layout {layout!r}: use element or vector")
    if not 0 <= refine <= MAX_REPEATS:
        raise InputError(f"--refine {refine}: must be in 0..{MAX_REPEATS:,} extra forward passes (accelsim.checks.MAX_REPEATS)")
    if refine and budget is None and weights != "minilm":
        raise InputError(f"--refine {refine}: relaxes layers against an accuracy budget; give --budget with --weights minilm")
    if out is not None:
        ensure_writable(out, suffixes=(".json", ".parquet"), inputs=(workload, weights))
    kw = parse_overrides(params, source="--param")
    _check_plan_runs(out, workload, weights, kw)
    net = as_network(workload, **kw)
    model, real = None, None
    if weights == "minilm":
        if workload != "minilm":
            raise InputError("--weights minilm: only fits --workload minilm")
        from accelsim.codesign.minilm import load_minilm

        model = load_minilm()
        real = model.linear_weights()
    elif weights is not None:
        real = load_weight_file(weights, net)
    if real is not None and prune:
        from accelsim.codesign.magnitude import prune_weights

        real = prune_weights(real, prune)
    with on_interrupt(lambda: "nothing written" + (f" (--out {out} is written when the search finishes)" if out else "")):
        result = search(arch, net, budget=budget, max_error=max_error, weights=real, model=model, prune=prune,
                        max_terms=max_terms, series=series, refine=refine, mapper=mapper_of(mapper, objective))
    if out is not None:
        write_result(result, out, workload, kw, layout, sparse_tc)
    if fmt == Format.json:
        print_json(result.to_dict())
        return
    rows = [[l.name, l.choice.label, l.choice.error, l.choice.cycles, l.choice.energy_pj, l.choice.edp,
             l.choice.edp / l.dense.edp if l.dense.edp else 1.0] for l in result.layers]
    t = result.total
    rows.append(["TOTAL", f"{t['compute_fraction']:.3f} of MACs", result.proxy.get("max_rel_error", 0.0),
                 t["cycles"], t["energy_pj"], t["edp"], t["edp"] / t["dense_edp"] if t["dense_edp"] else 1.0])
    proxy = ", ".join(f"{k} {v:.4f}" for k, v in result.proxy.items())
    cap = "none" if result.cap == float("inf") else f"{result.cap:.4f}"
    notes = [f"{k}: {PROXY_MEANINGS[k]}" for k in result.proxy if k in PROXY_MEANINGS]
    print_table(f"TASDER: {result.workload} on {result.arch}",
                ["layer", "choice", "rel. error", "cycles", "energy pJ", "EDP pJ·cyc", "EDP × dense"], rows,
                caption="\n".join([f"per-layer cap {cap}; {proxy}; EDP change vs dense on this arch "
                                    f"{t['edp_change']:+.1%}", *notes]))


def _check_plan_runs(out: Path | None, workload: str, weights: str | None, params: dict) -> None:
    """Refuse a plan `accelsim run` would refuse: minilm runs its real weights, which have a fixed
    number of positions, so a longer --param seq_len is caught here rather than after the search."""
    if out is None or out.suffix.lower() != ".json" or workload != "minilm" or weights not in (None, "minilm"):
        return
    from accelsim.codesign.minilm import MiniLMConfig

    seq_len, most = params.get("seq_len"), MiniLMConfig.max_seq_len
    if isinstance(seq_len, int) and seq_len > most:
        raise InputError(f"--param seq_len={seq_len}: minilm has {most} positions, so `accelsim run` could not run "
                         f"this plan; use seq_len <= {most}")


def register(app: typer.Typer) -> None:
    """Attach the ``tasd`` group to the top-level app."""
    app.add_typer(tasd_app, name="tasd")
