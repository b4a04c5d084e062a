"""The benchmark scripts run end to end (``--quick``) and write the documented results.json.

Timings are not asserted (they are what the scripts report); the row schema and the cases
are, since other tools read them.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(name, *args, timeout=600):
    """``python benchmarks/NAME.py ARGS...`` from the repository root."""
    command = [sys.executable, f"benchmarks/{name}.py", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run_benchmark(name, out):
    result = run_script(name, "--quick", "--repeats", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "keys", "impls"),
    [
        (
            "bounds",
            {
                "bound",
                "n",
                "hidden",
                "impl",
                "seconds",
                "compile_seconds",
                "gflops_per_s",
                "peak_bytes",
            },
            {"dense", "blocked", "naive_jax"},
        ),
        (
            "train_step",
            {"variant", "batch", "impl", "step_seconds", "gflops_per_s"},
            {"factorcl_jax"},
        ),
    ],
)
def test_benchmark_writes_its_rows(tmp_path, name, keys, impls):
    results = run_benchmark(name, tmp_path)
    assert results["matmul_peak_gflops"] > 0
    rows = results["rows"]
    assert rows and all(keys <= set(row) for row in rows)
    assert impls <= {row["impl"] for row in rows}
    timed = [row for row in rows if row["impl"] in impls]
    assert all(row["gflops_per_s"] > 0 for row in timed)
    seconds = "seconds" if name == "bounds" else "step_seconds"
    assert all(row[seconds] > 0 for row in timed)


@pytest.mark.slow
def test_memory_benchmark_measures_every_way_and_the_ring_equals_dense(tmp_path):
    result = run_script("memory", "--quick", "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert results["complete"] and not [row for row in rows if "error" in row]
    assert {(r["workload"], r["mode"], r["devices"], r["exchange"]) for r in rows} >= {
        ("factorcl", "dense", 1, "all_gather"),
        ("factorcl", "tiled", 1, "all_gather"),
        ("simclr", "tiled", 8, "ring"),
        ("simclr", "tiled", 8, "all_gather"),
    }
    ran = [row for row in rows if row["ran"]]
    assert ran and all(r["rss_gib"] > 0 and r["step_s"] > 0 and r["tflops_per_s"] > 0 for r in ran)
    assert all(r["planned_gib"] > 0 for r in rows)
    dense, tiled = (
        next(
            r for r in rows if r["workload"] == "factorcl" and r["mode"] == m and r["batch"] == 128
        )
        for m in ("dense", "tiled")
    )
    assert tiled["temp_gib"] < dense["temp_gib"]
    assert results["ring_equals_dense"]["absolute_difference"] < 1e-4
    assert (tmp_path / "memory.png").stat().st_size > 0


@pytest.mark.slow
def test_revisions_benchmark_times_both_trees_and_breaks_the_step_into_products(tmp_path):
    """This checkout against itself: every workload on both trees, the same estimates."""
    result = run_script(
        "revisions",
        "--baseline",
        ROOT,
        "--workloads",
        "staircase",
        "FactorCL-SUP",
        "--steps",
        20,
        "--step-calls",
        1,
        "--repeats",
        1,
        "--out",
        tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {(row["tree"], row["workload"]): row for row in results["rows"]}
    workloads = ("staircase", "FactorCL-SUP")
    assert set(rows) == {(tree, w) for tree in ("baseline", "candidate") for w in workloads}
    assert all(row["seconds"] > 0 for row in rows.values())
    assert rows["baseline", "staircase"]["candidate_speedup"] > 0
    assert rows["baseline", "staircase"]["levels"] == rows["candidate", "staircase"]["levels"]
    step = rows["candidate", "FactorCL-SUP"]
    # Nearly every FLOP of the step is a matrix product, and the products were timed alone.
    assert 0.9 * step["xla_gflop"] < step["product_gflop"] <= 1.01 * step["xla_gflop"]
    assert step["products_alone_seconds"] > 0 and 0 < step["fraction_of_peak"]
    assert step["products"][0]["count"] >= 1


@pytest.mark.slow
def test_revisions_benchmark_refuses_a_folder_without_the_package(tmp_path):
    result = run_script("revisions", "--baseline", tmp_path, timeout=120)
    assert result.returncode != 0
    assert "not a source tree of factorcl_jax" in result.stderr
    assert "Traceback" not in result.stderr
