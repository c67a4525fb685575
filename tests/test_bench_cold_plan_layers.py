"""bench/bench_cold_plan_layers.py: the operand bytes its cold copies are counted by, and a run of it."""

import numpy as np
import pytest

from bench.bench_cold_plan_layers import SHAPES, main, operand_bytes
from kernels.suites.gemm import dense_case
from kernels.suites.nm_spmm import nm_case


def test_operand_bytes_count_an_nm_tensors_values_and_metadata():
    """2:4 element, 768 × 768 weight: 768 · 384 fp32 values and as many uint8 indices, and the 768 × 128 fp32
    activation; 1:8 vector, 3072 × 768: 3072 · 96 values, one uint8 index per value per 32 rows; dense 128 × 768 ×
    768: both fp32 operands."""
    two_four = nm_case("t", 768, 128, 768, "float32", "2:4", np, 0).prepare().args
    one_eight = nm_case("t", 3072, 128, 768, "float32", "1:8", np, 0, "vector").prepare().args
    dense = dense_case("t", 128, 768, 768, "float32", np, 0).prepare().args
    assert operand_bytes(two_four) == 768 * 384 * 4 + 768 * 384 + 768 * 128 * 4
    assert operand_bytes(one_eight) == 3072 * 96 * 4 + 3072 // 32 * 96 + 768 * 128 * 4
    assert operand_bytes(dense) == (128 * 768 + 768 * 768) * 4


@pytest.mark.parametrize("after", [[], ["--before", "ffn2"], ["--before", "layernorm"], ["--before", "sleep1"]])
def test_a_small_run_prints_a_row_per_shape_cold_no_faster_than_a_tenth_of_warm(capsys, after):
    main(["--side-mib", "4", "--repeats", "3", *after])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and r[2].isalnum()][1:]
    assert len(rows) == len(SHAPES)
    for r in rows:
        warm, cold = (float(x) for x in r.split("|")[4:6])
        assert warm > 0 and cold > 0.1 * warm
