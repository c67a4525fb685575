"""The NumPy runs keep freed memory for reuse (as CuPy's pool does on a GPU): temporaries of the next call
do not fault their pages in again. Counted as minor page faults in a fresh process, with and without."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

SCRIPT = """
import resource, sys
import numpy as np
from kernels.trace.microbench import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def call():  # 12.8 MB and 52 MB temporaries live at once, as a full-size TASD-A decomposition has
    xs = [np.full(1_600_000, 1.5) for _ in range(12)] + [np.full(6_500_000, 1.5) for _ in range(2)]
    del xs
call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    call()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_freed_memory_is_reused_without_page_faults():
    pages = 5 * (12 * 1_600_000 + 2 * 6_500_000) * 8 // 4096   # what five calls touch, in 4 KiB pages
    default, kept = _faults("default"), _faults("keep")
    # glibc hands the memory back and faults it in again (a fault may map up to a 2 MiB huge page)
    assert default > pages // 512
    assert kept * 100 < default


def test_a_run_records_whether_freed_memory_was_kept(tmp_path):
    from accelsim.codesign.plan import load_plan
    from accelsim.codesign.runplan import prepare_run

    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "accelsim.plan", "version": 1, "network": {"workload": "bert_base", "params": {}}, '
                    '"arch": "tasd_ttc", "layers": []}')
    prepared = prepare_run(load_plan(plan), params={"seq_len": 8}, layers="0:1", backend="numpy")
    assert prepared.meta["freed_memory_kept"] is True
