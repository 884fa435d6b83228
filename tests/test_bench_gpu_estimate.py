"""bench/gpu_equalinfo_speed.py without a GPU: every exact rule has its twins, its weights and its ceilings.

The script's measured path needs a GPU (or minutes of numba's CUDA simulator); these check what it picks per rule and
the arithmetic of the ceilings it prints when no GPU is here.
"""
import contextlib
import importlib.util
import io
import sys
from pathlib import Path

import pytest

from equalinfo.ref import int8_m1, integer_m1
from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.train import m1

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # for its `import _checkout`
    try:
        spec = importlib.util.spec_from_file_location("gpu_equalinfo_speed", BENCH / "gpu_equalinfo_speed.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_every_rule_has_its_twins_weights_and_gemm_count(bench):
    assert set(bench.RULES) == set(bench.QUANTIZE) == set(bench.GEMMS_PER_PRODUCT) == set(RULE_MODULES)
    for rule, name in RULE_MODULES.items():
        gpu, cpu = bench.RULES[rule]
        assert gpu.__name__ == f"equalinfo.fast.gpu.{name}" and cpu.__name__ == f"equalinfo.fast.cpu.{name}"
        assert gpu.EXACT_M1_VERSION == rule and callable(gpu.next_probs_on_device) and callable(cpu.next_probs)
    assert bench.QUANTIZE[1] is None and bench.QUANTIZE[2] is integer_m1.quantize_params
    assert bench.QUANTIZE[3] is bench.QUANTIZE[4] is int8_m1.quantize_params  # rule 4 reads rule 3's arrays
    assert bench.GEMMS_PER_PRODUCT == {1: 1, 2: 1, 3: 2, 4: 1}


def test_rule_flag_accepts_every_known_rule_and_no_other(bench):
    for rule in RULE_MODULES:
        assert bench.parse_args(["--rule", str(rule)]).rule == rule
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.parse_args(["--rule", str(max(RULE_MODULES) + 1)])


def test_ceilings_arithmetic(bench):
    args = bench.parse_args([])
    cfg = m1.make_config("3m")
    assert bench.product_macs(cfg) == 3 * (4 * 256 * 256 + 3 * 256 * 1024) + 256 * 257  # 3,211,520
    ceilings = bench.estimate(args, cfg)
    assert sorted(ceilings) == sorted(RULE_MODULES) and all(ceilings.values())
    per_byte = 2 * bench.product_macs(cfg) * 1.3
    assert ceilings[1][0][1] == pytest.approx(67e12 / 2 / per_byte / 1e6)  # FP32 / 2, no FMA: ~4.0 MB/s
    assert ceilings[2][0][1] == pytest.approx(67e12 / per_byte / 1e6)  # FP64 DGEMM: ~8.0 MB/s
    assert ceilings[3][0][1] == pytest.approx(ceilings[1][0][1])  # two SGEMMs at the full FP32 rate
    assert ceilings[3][1][1] == pytest.approx(1979e12 / 2 / per_byte / 1e6)  # two int8 GEMMs: ~118 MB/s
    assert [name for name, _ in ceilings[3]] == [name for name, _ in ceilings[4]]
    for (_, three), (_, four) in zip(ceilings[3], ceilings[4]):
        assert four == 2 * three  # one GEMM per product instead of two, on the same peak


def test_printed_estimate_names_every_rule_and_each_peak(bench):
    args = bench.parse_args(["--rule", "4", "--size", "micro", "--peak-int8-tops", "1000"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.print_estimate(args, "test")
    rows = [line.split() for line in out.getvalue().splitlines() if line.startswith("  ") and line.split()[0].isdigit()]
    assert sorted({int(row[0]) for row in rows}) == sorted(RULE_MODULES)
    assert len(rows) == sum(len(bench.rule_peaks(args, rule)) for rule in RULE_MODULES) == 6
    assert sum("INT8 tensor 1000 TOPS" in " ".join(row) for row in rows) == 2
    assert all(row[-1] == "--rule" for row in rows if row[0] == "4") and not any(
        "--rule" in row for row in rows if row[0] != "4")
