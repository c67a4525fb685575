"""`accelsim prune`: project a weight tensor into an ℓ1,∞-type ball and report the zeroed structure."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from accelsim.checks import check_dim, ensure_writable
from accelsim.cli._common import Format, FormatOpt, print_json, print_table
from kernels.errors import InputError

__all__ = ["Method", "prune_command", "register"]

_SHOW = 16  # indices listed in the table; --format json lists them all


class Method(str, enum.Enum):
    bilevel_l1inf = "bilevel-l1inf"
    bilevel_l11 = "bilevel-l11"
    bilevel_l12 = "bilevel-l12"
    exact_l1inf = "exact-l1inf"


def prune_command(
    input: Path = typer.Argument(..., help="weights: .npy or .safetensors", show_default=False),
    out: Path = typer.Option(..., "--out", help="pruned tensor, written atomically (.npy)", show_default=False),
    radius: float = typer.Option(..., "--radius", help="radius C of the ℓ1,p ball (>= 0)", show_default=False),
    method: Method = typer.Option(Method.bilevel_l1inf, "--method", help="projection to apply"),
    axis: int = typer.Option(0, "--axis", help="axis the inner norm runs along; 0 zeroes whole columns"),
    tensor: str = typer.Option(None, "--tensor", help="tensor name inside a .safetensors file"),
    workers: int = typer.Option(1, "--workers", help="CPU threads over column blocks (same result)"),
    arch: str = typer.Option(None, "--arch", help="also simulate the layer before/after pruning on this arch"),
    tokens: int = typer.Option(512, "--tokens", help="rows of the activation operand (batch × sequence) when simulating"),
    residual: str = typer.Option(None, "--residual", help="weight sparsity of the kept block, e.g. 2:4 or tasd:2:4+1:4"),
    fmt: Format = FormatOpt,
) -> None:
    """Prune INPUT by projection and report zeroed rows/columns, density and the norm before/after."""
    # Imported here: numpy, the projections and the model are start-up that `accelsim --help` skips.
    from accelsim.codesign.prune import prune, simulate_pruned
    from accelsim.codesign.tensors import load_tensor, save_npy
    from accelsim.model.arch import load_arch
    from accelsim.model.workload import Sparsity

    ensure_writable(out, suffixes=(".npy",), inputs=(input,))
    cfg = load_arch(arch) if arch is not None else None  # every option is checked before the work
    if cfg is not None:
        check_dim("--tokens", tokens, "prune")
        if residual is not None:
            try:
                Sparsity.parse(residual)
            except InputError as exc:
                raise InputError(f"--residual: {exc}") from None
    w = load_tensor(input, tensor)
    result = prune(w, radius, method.value, axis, workers=workers)
    report = {"input": str(input), "tensor": tensor, "out": str(out), **result.to_dict()}
    if cfg is not None:
        report["simulation"] = simulate_pruned(cfg, result.structure, tokens, residual)
    save_npy(result.weights, out)  # last: a failure above leaves no output file
    if fmt == Format.json:
        print_json(report)
        return
    st = result.structure
    rows = [
        ["method", result.method],
        ["radius", result.radius],
        ["axis", result.axis],
        ["shape", "×".join(map(str, st.shape))],
        [f"norm {report['norm']} before", result.norm_before],
        [f"norm {report['norm']} after", result.norm_after],
        ["density", st.density],
        ["zero rows", f"{len(st.zero_rows)}/{st.n_rows} ({st.zero_row_fraction:.1%})"],
        ["zero row indices", _preview(st.zero_rows)],
        ["zero cols", f"{len(st.zero_cols)}/{st.n_cols} ({st.zero_col_fraction:.1%})"],
        ["zero col indices", _preview(st.zero_cols)],
    ]
    print_table(f"prune {input.name} → {out.name}", ["field", "value"], rows)
    if arch is not None:
        sim = report["simulation"]
        print_table(f"{sim['baseline']}: {tokens} tokens × weight {'×'.join(map(str, st.shape))}",
                    ["variant", "K", "N", "runs as", "cycles", "compute", "stall", "speedup", "energy pJ", "EDP ×"],
                    [[a["variant"], a["k"], a["n"], a["executed"], a["cycles"], a["compute_cycles"], a["stall_cycles"],
                      a["speedup"], a["energy_pj"], a["edp_ratio"]] for a in sim["variants"]],
                    caption=_prune_caption(sim["variants"]))


def register(app: typer.Typer) -> None:
    """Attach ``prune`` to the top-level app."""
    app.command("prune")(prune_command)


def _prune_caption(variants: list[dict]) -> str:
    """What the columns mean, and why a residual pattern can gain nothing on top of pruning."""
    text = ("speedup and EDP × against dense; runs as: the pattern the hardware executes; compute and stall "
            "cycles add up to cycles")
    if len(variants) == 3 and variants[2]["cycles"] >= variants[1]["cycles"]:
        pruned, res = variants[1], variants[2]
        why = ("the layer waits on memory (stall cycles), and the residual's metadata adds bytes"
               if res["stall_cycles"] > pruned["stall_cycles"] or pruned["stall_cycles"] >= pruned["compute_cycles"]
               else "the sparse MACs do not shorten the compute of so small a block (tiles are padded)")
        text += f"; {res['variant']} is no faster than pruned: {why}"
    return text


def _preview(idx) -> str:
    head = ", ".join(map(str, idx[:_SHOW]))
    return head + (f", … (+{len(idx) - _SHOW})" if len(idx) > _SHOW else "") if idx else "-"
