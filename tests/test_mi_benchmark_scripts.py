"""benchmarks/mi_estimation.py and benchmarks/mi_speed.py run end to end at tiny sizes and
write the documented results.json (timings are reported, not asserted)."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(name, out, *args, env=None):
    result = subprocess.run(
        [sys.executable, f"benchmarks/{name}.py", "--out", str(out), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "results.json").read_text()), result.stdout


FAKE_BMI = """
class _Constant:
    value = 0.0

    def __init__(self, **options):
        pass

    def estimate(self, x, y):
        return self.value


class _Estimators:
    pass


estimators = _Estimators()
for _name, _value in [
    ("InfoNCEEstimator", 100.0),
    ("NWJEstimator", 100.0),
    ("MINEEstimator", 100.0),
    ("DonskerVaradhanEstimator", 100.0),
    ("KSGEnsembleFirstEstimator", 100.0),
    ("CCAMutualInformationEstimator", 0.7764),
]:
    setattr(estimators, _name, type(_name, (_Constant,), {"value": _value}))
"""


@pytest.mark.slow
def test_mi_estimation_writes_accuracy_ablation_and_staircase_rows(tmp_path):
    """The accuracy table beside a stand-in for bmi (its estimators return constants: 100
    nats, far from the truth, and CCA the truth itself), the ablation and the staircase."""
    fake = tmp_path / "fake"
    (fake / "bmi").mkdir(parents=True)
    (fake / "bmi" / "__init__.py").write_text(FAKE_BMI)
    out = tmp_path / "out"
    results, stdout = run_script(
        "mi_estimation",
        out,
        *"--quick --tasks 1v1-AI --estimators infonce cca --seeds 2".split(),
        *"--fixed-samples 400 --ablation ranks".split(),
        *f"--bmi-python {sys.executable} --bmi-neural-seeds 1".split(),
        *"--dims 3 --levels 1 2 --steps 20 --hidden 8 --window 10".split(),
        *"--staircase-estimators infonce nce_club club".split(),
        env={"PYTHONPATH": str(fake)},
    )
    rows = {row["estimator"]: row for row in results["accuracy"]}
    infonce, cca = rows["infonce"], rows["cca"]
    assert infonce["task"] == "1v1-AI" and infonce["true_mi"] == pytest.approx(0.776, abs=0.01)
    assert len(infonce["values"]) == 2 and infonce["seconds"] > 0
    # bmi's neural estimator ran on seed 0 only; the comparison uses the seeds both ran.
    assert infonce["bmi_values"] == [100.0] and infonce["verdict"] == "closer"
    assert infonce["margin_noise"] is None  # one shared seed
    assert cca["bmi_seeds"] == 2 and cca["verdict"] == "farther"
    assert cca["error_margin"] > 2 * cca["margin_noise"]
    counts = {"closer": 0, "same": 0, "farther": 0, "farther_beyond_noise": 0, "tasks": 1}
    assert results["closer_than_bmi"] == {
        "infonce": {**counts, "at_least_as_close": 1, "closer": 1},
        "cca": {**counts, "at_least_as_close": 0, "farther": 1, "farther_beyond_noise": 1},
    }
    assert infonce["pmi_w1"] > 0 and cca["pmi_w1"] is None  # a fine distribution
    ablation = {row["change"]: row for row in results["ablation"]}
    assert ablation["default"]["estimate"] == pytest.approx(infonce["estimate"], abs=1e-5)
    summary = results["ablation_summary"]["ranks"]
    assert summary["better"] + summary["same"] + summary["worse"] == 1
    staircase = results["staircase"]
    assert {(r["estimator"], r["level"]) for r in staircase} == {
        (name, level) for name in ("infonce", "nce_club", "club") for level in (0, 1)
    }
    # infonce and nce_club came from one program; club from its own.
    assert {r["program"] for r in staircase} == {"infonce+nce_club", "club"}
    assert results["pngs"] == ["errors.png", "pmi-1v1-AI.png", "staircase-gaussian.png"]
    assert all((out / png).stat().st_size > 0 for png in results["pngs"])
    assert "held-out estimates (nats)" in stdout and "on the cells bmi ran too" in stdout


@pytest.mark.slow
def test_bmi_neural_seeds_fewer_than_ours_with_neural_estimators_only(tmp_path):
    """Seeds past --bmi-neural-seeds give bmi nothing to run when every estimator is neural:
    bmi runs on the first seeds only and the comparison uses those."""
    fake = tmp_path / "fake"
    (fake / "bmi").mkdir(parents=True)
    (fake / "bmi" / "__init__.py").write_text(FAKE_BMI)
    results, _ = run_script(
        "mi_estimation",
        tmp_path / "out",
        *"--quick --tasks 1v1-AI --estimators nwj --seeds 2 --fixed-samples 400".split(),
        *f"--bmi-python {sys.executable} --bmi-neural-seeds 1 --dims --no-plots".split(),
        env={"PYTHONPATH": str(fake)},
    )
    (row,) = results["accuracy"]
    assert len(row["values"]) == 2 and row["bmi_values"] == [100.0] and row["bmi_seeds"] == 1
    assert row["verdict"] == "closer"


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_a_comparison_with_bmi_calls_floating_point_differences_the_same_and_weighs_noise():
    compare = _benchmark("mi_estimation").compare_to_bmi
    # The same estimator in float32 and float64: a ten-thousandth apart is "same".
    assert compare([(0.5001, 0.5), (0.4999, 0.5)], true_mi=0.6)[0] == "same"
    verdict, margin, noise = compare([(0.55, 0.5), (0.57, 0.52), (0.56, 0.5)], true_mi=0.6)
    assert verdict == "closer" and margin == pytest.approx(-0.0533, abs=1e-3)
    assert noise == pytest.approx(np.std([0.05, 0.05, 0.06], ddof=1) / np.sqrt(3))
    verdict, margin, noise = compare([(0.3, 0.5)], true_mi=0.6)
    assert verdict == "farther" and margin == pytest.approx(0.2) and noise is None
    assert compare([], true_mi=0.6) == (None, None, None)


@pytest.mark.slow
def test_mi_speed_reports_every_program_against_the_roofline(tmp_path):
    results, stdout = run_script("mi_speed", tmp_path, "--quick", "--steps", 3, "--repeats", 1)
    assert results["matmul_peak_gflops"] > 0 and results["copy_bandwidth_gbs"] > 0
    programs = {row["program"]: row for row in results["rows"]}
    assert set(programs) == {
        "straightforward, infonce",
        "fused, infonce",
        "fused, infonce+nce_club",
        "fused, infonce, 4 seeds",
    }
    for row in programs.values():
        assert row["ms_per_step"] > 0 and row["roofline_ms"] > 0 and row["step_mflops"] > 0
        assert len(row["infonce_levels"]) == 5
    # The fused step keeps fewer [b*m, H] arrays than the straightforward one.
    assert (
        programs["fused, infonce"]["pair_sized_arrays"]
        < programs["straightforward, infonce"]["pair_sized_arrays"]
    )
    assert programs["fused, infonce+nce_club"]["nce_club_levels"] is not None
    assert "roofline_ms" in stdout
