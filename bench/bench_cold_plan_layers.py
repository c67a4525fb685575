"""How much slower BERT's plan layers run cold than warm, as the calibration times dense GEMMs cold (issue 26).

The calibration times its N:M paths warm (their operands in cache) and prices a run's plan layer from that warm fit
with only the read of its operands at the cold GEMMs' scale; a run's dense layer it prices as its cold case
(:func:`~accelsim.replay.calibration_set.cold_case`). This times ``bert_base``'s dense 128 × 768 × 768 product, its
2:4 q/k/v/o products (``decompress_blas``) and its 1:8 vector FFN products (the gather path) warm and cold in turn, the
cold call on the next of :func:`~accelsim.replay.calibration_set.cold_copies` copies of its operands spanning
``2 × --side-mib``, as ``cold_case`` does: what a cold case of each plan path would measure, to set beside a run's
layers (``bench/bench_loop_cases.py layers``). ``--before`` puts an untimed step before every timed call: ``ffn2``
the 1:8 FFN2 product on its own turning copies (in a run the previous block's FFN2 comes before ``q``), ``layernorm``
a 128 × 768 normalisation pass, ``sleep1`` / ``sleep20`` an idle 1 or 20 ms.
Run: ``python bench/bench_cold_plan_layers.py [--threads 1] [--side-mib 60] [--repeats 40] [--before ffn2]``.
"""

from __future__ import annotations

import argparse
import copy
import time
from itertools import cycle

import numpy as np

__all__ = ["SHAPES", "main", "operand_bytes"]

SHAPES = (("dense", 128, 768, 768, None, "element"), ("2:4", 768, 128, 768, "2:4", "element"),
          ("2:4", 3072, 128, 768, "2:4", "element"), ("1:8", 3072, 128, 768, "1:8", "vector"),
          ("1:8", 768, 128, 3072, "1:8", "vector"))
"""``(label, m, n, k, pattern, layout)``: the dense case is the NumPy shape of a run's q layer (tokens × out × in);
the N:M ones the kernels' weight-major shape (out × tokens × in), BERT's attention and FFN products."""


def operand_bytes(args) -> int:
    """Bytes of a prepared call's operands: arrays, and the arrays an N:M tensor holds."""
    arrays = [a for x in args for a in ([x] if isinstance(x, np.ndarray) else vars(x).values())]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def main(argv=None) -> None:
    from threadpoolctl import threadpool_limits

    from accelsim.replay.calibration_set import cold_copies
    from kernels.suites.gemm import dense_case
    from kernels.suites.nm_spmm import nm_case
    from kernels.timing import time_call
    from kernels.trace.microbench import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--side-mib", type=int, default=60, help="the copies span twice this (the calibration's "
                        "cold side on the 2-vCPU Xeon VM)")
    parser.add_argument("--repeats", type=int, default=40, help="timed calls each way (the median is kept)")
    parser.add_argument("--before", choices=("none", "ffn2", "layernorm", "sleep1", "sleep20"), default="none",
                        help="an untimed step before each timed call")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as `accelsim run` and `accelsim calibrate` do

    def turning(p, size: int):
        """A call of prepared ``p`` (operands of ``size`` bytes) on the next of its copies spanning ``2 × --side-mib``,
        as :func:`~accelsim.replay.calibration_set.cold_case` turns them: a cold call; and how many copies."""
        copies = [copy.deepcopy(p.args) for _ in range(cold_copies(size, args.side_mib * 2**20))]
        turn = cycle(copies)
        return (lambda: p.fn(*next(turn))), len(copies)

    def before_step(name: str):
        if name == "ffn2":
            ffn2 = nm_case("bench", 768, 128, 3072, "float32", "1:8", np, 1, "vector").prepare()
            return turning(ffn2, operand_bytes(ffn2.args))[0]
        x = np.random.default_rng(1).standard_normal((128, 768), dtype=np.float32)
        return {"none": None, "sleep1": lambda: time.sleep(1e-3), "sleep20": lambda: time.sleep(2e-2),
                "layernorm": lambda: (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)}[name]

    before = before_step(args.before)
    print("| product | m × n × k | operands MiB × copies | warm ms | cold ms | cold / warm |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for label, m, n, k, pattern, layout in SHAPES:
            case = (dense_case("bench", m, n, k, "float32", np, 0) if pattern is None
                    else nm_case("bench", m, n, k, "float32", pattern, np, 0, layout))
            p = case.prepare()
            size = operand_bytes(p.args)
            cold_call, count = turning(p, size)
            warm = time_call(p.fn, *p.args, repeats=args.repeats, min_window_s=0, before=before).median_s
            cold = time_call(cold_call, repeats=args.repeats, xp=np, min_window_s=0, before=before).median_s
            print(f"| {label} {layout if pattern else ''} | {m} × {n} × {k} | {size / 2**20:.2f} × {count} | "
                  f"{warm * 1e3:.3f} | {cold * 1e3:.3f} | {cold / warm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
