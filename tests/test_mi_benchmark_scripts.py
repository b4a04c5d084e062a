"""benchmarks/mi_estimation.py and benchmarks/mi_speed.py run end to end at tiny sizes and
write the documented results.json (timings are reported, not asserted)."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(name, out, *args):
    result = subprocess.run(
        [sys.executable, f"benchmarks/{name}.py", "--out", str(out), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "results.json").read_text()), result.stdout


@pytest.mark.slow
def test_mi_estimation_writes_accuracy_and_staircase_rows(tmp_path):
    results, stdout = run_script(
        "mi_estimation",
        tmp_path,
        *"--quick --tasks gaussian-d2-mi1 --estimators infonce --seeds 2".split(),
        *"--fixed-samples 400".split(),
        *"--dims 3 --levels 1 2 --steps 20 --hidden 8 --window 10".split(),
        *"--staircase-estimators infonce nce_club club".split(),
    )
    (row,) = results["accuracy"]
    assert row["task"] == "gaussian-d2-mi1.0" and row["estimator"] == "infonce"
    assert len(row["values"]) == 2 and row["seconds"] > 0 and row["true_mi"] == 1.0
    assert row["in_sample"] is not None and row["stderr"] > 0
    staircase = results["staircase"]
    assert {(r["estimator"], r["level"]) for r in staircase} == {
        (name, level) for name in ("infonce", "nce_club", "club") for level in (0, 1)
    }
    # infonce and nce_club came from one program; club from its own.
    assert {r["program"] for r in staircase} == {"infonce+nce_club", "club"}
    assert results["pngs"] == ["estimates_vs_truth.png", "staircase-gaussian.png"]
    assert all((tmp_path / png).stat().st_size > 0 for png in results["pngs"])
    assert "held-out estimates (nats)" in stdout


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
