#!/usr/bin/env bash
# One accelerator check in one go (about 8 minutes on one H100/H200).
#
#   bash benchmarks/accelerator_check.sh [OUT_DIR]
#
# Needs `pip install -e .` and a JAX with the accelerator's plugin (e.g. jax[cuda12]); run it
# from anywhere. It measures, each step in its own process so each one has the
# device to itself:
#
#   1. the device's matmul peak in bfloat16 and in float32 (jitted [8192, 8192] products;
#      float32 at JAX's default precision, which may use TF32 tensor cores on NVIDIA GPUs);
#   2. benchmarks/memory.py --accelerator: the largest FactorCL-SSL (paper sizes) and SimCLR
#      (separable critic) steps, blocked and tiled, float32 and bfloat16: step time,
#      model TFLOP/s, XLA's planned memory and the device's peak bytes in use;
#   3. benchmarks/train_step.py and benchmarks/bounds.py (their --quick sizes, so they fit
#      the time; the large-batch TFLOP/s come from step 2) on the accelerator.
#
# It ends with a table of achieved TFLOP/s against the measured peak of the matching dtype and
# writes OUT_DIR/summary.json (each benchmark's own results.json sits in its folder).
set -euo pipefail

OUT="${1:-runs/accelerator-check-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$(dirname "$0")/.."
START=$SECONDS

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep going on failure
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    echo "   done in $((SECONDS - START))s total"
  else
    echo "   FAILED or timed out (status $?): see $OUT/$name.log"
    tail -n 5 "$OUT/$name.log" || true
  fi
}

step peak 45 python - "$OUT/peak.json" <<'EOF'
import json, sys, time
import jax, jax.numpy as jnp

def peak(dtype, size=8192, repeats=20):
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    f = jax.jit(jnp.matmul).lower(a, a).compile()
    f(a, a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = f(a, a)
    out.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12

device = jax.devices()[0]
result = {
    "device": f"{device.platform}: {device.device_kind}",
    "device_count": jax.device_count(),
    "jax": jax.__version__,
    "bfloat16_tflops": peak(jnp.bfloat16),
    "float32_tflops": peak(jnp.float32),
}
print(result)
json.dump(result, open(sys.argv[1], "w"), indent=2)
EOF

# Each limit leaves the next step its time; a step cut short keeps the rows it finished.
step memory 250 python benchmarks/memory.py --accelerator --max-run-gib 100 --out "$OUT/memory"
step train_step 80 python benchmarks/train_step.py --quick --repeats 5 --out "$OUT/train_step"
step bounds 50 python benchmarks/bounds.py --quick --repeats 5 --out "$OUT/bounds"

python - "$OUT" <<'EOF'
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])

def load(name):
    path = out / name / "results.json" if name != "peak" else out / "peak.json"
    return json.loads(path.read_text()) if path.exists() else None

peak = load("peak") or {}
peaks = {"bfloat16": peak.get("bfloat16_tflops"), "float32": peak.get("float32_tflops")}
rows = []
memory = load("memory")
for r in (memory or {}).get("rows", []):
    if r.get("ran"):
        rows.append({
            "benchmark": "memory",
            "case": f"{r['workload']} {r['mode']} {r['devices']}dev batch {r['batch']}",
            "dtype": r["dtype"],
            "seconds": r["step_s"],
            "tflops_per_s": r["tflops_per_s"],
            "device_peak_gib": r.get("device_peak_gib"),
            "planned_gib": r["planned_gib"],
        })
for r in (load("train_step") or {}).get("rows", []):
    if r["impl"] == "factorcl_jax":
        rows.append({
            "benchmark": "train_step",
            "case": f"{r['variant']} batch {r['batch']}",
            "dtype": "float32",
            "seconds": r["step_seconds"],
            "tflops_per_s": r["gflops_per_s"] / 1e3,
        })
for r in (load("bounds") or {}).get("rows", []):
    if r["impl"] in ("dense", "blocked"):
        rows.append({
            "benchmark": "bounds",
            "case": f"{r['bound']} {r['impl']} n {r['n']} H {r['hidden']}",
            "dtype": "float32",
            "seconds": r["seconds"],
            "tflops_per_s": r["gflops_per_s"] / 1e3,
        })
for r in rows:
    reference = peaks.get(r["dtype"])
    r["fraction_of_peak"] = r["tflops_per_s"] / reference if reference else None

cell = lambda v: "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
columns = ["benchmark", "case", "dtype", "seconds", "tflops_per_s", "fraction_of_peak",
           "device_peak_gib", "planned_gib"]
table = [[cell(r.get(c)) for c in columns] for r in rows]
widths = [max([len(c)] + [len(t[k]) for t in table]) for k, c in enumerate(columns)]
print(f"\ndevice: {peak.get('device')}; matmul peak bf16 {cell(peaks['bfloat16'])} TFLOP/s, "
      f"fp32 {cell(peaks['float32'])} TFLOP/s")
print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
for t in table:
    print("  ".join(v.rjust(w) for v, w in zip(t, widths)))
summary = {"peak": peak, "rows": rows,
           "memory_slopes": (memory or {}).get("slopes")}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(f"wrote {out / 'summary.json'}")
EOF
echo "total ${SECONDS}s"
