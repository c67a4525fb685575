"""Project the loops of bench/bench_loop.sh again with the replay as it is now, without measuring anything again.

Each pass's calibration (``SRC/tT/pP/cal``) is fitted again on its own traces
(:func:`accelsim.replay.device_calibration.refit_saved`) into ``DST/tT/pP/cal``, and each of its runs
(``seq``, ``full``, ``bert``) is validated against it (``accelsim validate --format json``), so
``python bench/bench_loop_table.py DST`` tabulates the new projections beside the measured times. With
``--blas-core CORE``, records made before ``accelsim`` recorded the BLAS core (``params.blas_core``) get it, the
core they ran on (threadpoolctl's ``architecture`` on that box); records that have one keep theirs. With
``--arch-set compute.k_multiple=1`` (repeatable), each copied arch has that field set (its comments dropped), so a
change to what ``accelsim calibrate`` writes is judged on calibrations and runs already recorded. With
``--variant NAME``, a pricing of ``bench/loop_variants.py`` (one judged and not kept, or the replay's before a change)
stands in for the replay's (repeatable: one that sets the arch, one that prices the layers); ``--variant net_peak``
gives a calibration written before the thirty-second slice the MAC peaks ``calibrate`` writes now.
Loops measured on the 2-vCPU Xeon VM are kept in ``traces/loops-xeon-2vcpu/`` to start from.
Run: ``python bench/bench_loop_refit.py SRC DST [--blas-core SkylakeX] [--arch-set KEY=VALUE ...] [--variant NAME ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from accelsim.errors import ConfigError
from accelsim.model.arch import apply_overrides, load_arch, parse_overrides
from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, TRACES_DIR
from accelsim.replay.device_calibration import refit_saved
from accelsim.replay.traces import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_variants import VARIANTS  # noqa: E402

__all__ = ["copy_traces", "main", "refit_dir", "set_fields", "validated"]

LOOPS = ("seq", "full", "bert")


def copy_traces(src: Path, dst: Path, core: str | None) -> None:
    """The parquet files of ``src`` into ``dst``, each record's params given ``blas_core`` = ``core`` where it has
    none (``core`` None: copied as they are)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.parquet")):
        t = pq.read_table(f)
        if core is not None:
            params = [json.dumps({"blas_core": core, **json.loads(p or "{}")}) for p in t.column("params").to_pylist()]
            t = t.set_column(t.schema.get_field_index("params"), "params", pa.array(params, pa.string()))
        pq.write_table(t, dst / f.name)


def set_fields(text: str, settings: list[str]) -> str:
    """Arch YAML ``text`` with each ``KEY=VALUE`` of ``settings`` applied as ``--set`` applies it
    (:func:`~accelsim.model.arch.parse_overrides`, :func:`~accelsim.model.arch.apply_overrides`: list items by name,
    values read as YAML), the result checked as an arch. Raises :class:`~accelsim.errors.ConfigError` naming the
    setting.

    Examples
    --------
    >>> from accelsim.model.arch import ARCH_DIR
    >>> "k_multiple: 1" in set_fields((ARCH_DIR / "cpu_numpy.yaml").read_text(), ["compute.k_multiple=1"])
    True
    """
    doc = yaml.safe_load(text)
    for item in settings:
        doc = apply_overrides(doc, parse_overrides([item], source="--arch-set"), f"--arch-set {item}")
        try:
            load_arch(doc)
        except ConfigError as e:
            raise ConfigError(f"--arch-set {item}: {e}") from None
    return yaml.safe_dump(doc, sort_keys=True)


def refit_dir(src: Path, dst: Path, arch_text: str | None = None, core: str | None = None) -> dict:
    """The calibration directory ``src`` fitted again into ``dst`` on its own traces (:func:`copy_traces` with
    ``core``) and arch (``arch_text`` where given), what it measured kept; the new calibration document."""
    copy_traces(src / TRACES_DIR, dst / TRACES_DIR, core)
    (dst / ARCH_FILE).write_text(arch_text if arch_text is not None else (src / ARCH_FILE).read_text())
    doc = json.loads((src / CALIBRATION_FILE).read_text())
    new = refit_saved(doc, load(dst / TRACES_DIR), load_arch(dst / ARCH_FILE))
    (dst / CALIBRATION_FILE).write_text(json.dumps(new, indent=1) + "\n")
    return new


def validated(traces: Path, cal: Path, predictor=None) -> str:
    """``accelsim validate --traces traces --calibration cal --format json``'s output, run here so ``predictor``
    (a :mod:`loop_variants` pricing) can stand in for :func:`~accelsim.replay.network.simulator_predictor`."""
    import accelsim.replay.network as net
    from accelsim.cli import app

    own, out = net.simulator_predictor, io.StringIO()
    net.simulator_predictor = predictor or own
    try:
        with contextlib.redirect_stdout(out):
            app(["validate", "--traces", str(traces), "--calibration", str(cal), "--format", "json"],
                standalone_mode=False)
    finally:
        net.simulator_predictor = own
    return out.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="an output directory of bench/bench_loop.sh")
    parser.add_argument("dst", type=Path, help="where the refitted calibrations and the new reports go")
    parser.add_argument("--blas-core", help="the BLAS core for records made without one")
    parser.add_argument("--arch-set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a field of each copied arch, e.g. compute.k_multiple=1")
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS),
                        help="a pricing of bench/loop_variants.py (repeatable: one arch and one predictor variant)")
    args = parser.parse_args(argv)
    chosen = [VARIANTS[v] for v in args.variant]
    predictors = [v.predictor for v in chosen if v.predictor]
    if len(predictors) > 1:
        parser.error(f"--variant {' '.join(args.variant)}: at most one of those that price a layer "
                     f"({', '.join(k for k, v in VARIANTS.items() if v.predictor)})")
    passes = [p for p in sorted(args.src.glob("t*/p*")) if (p / "cal" / CALIBRATION_FILE).is_file()]
    try:  # every arch set before anything is written
        archs = [set_fields(t, args.arch_set) if args.arch_set else t
                 for t in ((p / "cal" / ARCH_FILE).read_text() for p in passes)]
    except ConfigError as e:
        parser.error(str(e))
    for pdir, arch_text in zip(passes, archs):
        out = args.dst / pdir.relative_to(args.src)
        doc = json.loads((pdir / "cal" / CALIBRATION_FILE).read_text())
        for variant in (v for v in chosen if v.arch):
            arch_text = set_fields(arch_text, variant.arch(load_arch(yaml.safe_load(arch_text)), doc))
        new = refit_dir(pdir / "cal", out / "cal", arch_text, args.blas_core)
        for loop in LOOPS:
            if not (pdir / loop).is_dir():
                continue
            copy_traces(pdir / loop, out / loop, args.blas_core)
            shutil.copy(pdir / f"{loop}.start", out / f"{loop}.start")
            report = validated(out / loop, out / "cal", predictors[0] if predictors else None)
            (out / f"{loop}.json").write_text(report)
        print(f"{out}: held-out MAPE {doc['held_out_mape_pct']:.1f} -> {new['held_out_mape_pct']:.1f} %", flush=True)


if __name__ == "__main__":
    main()
