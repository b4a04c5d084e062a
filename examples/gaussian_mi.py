"""InfoNCE saturates at log(batch); NCE-CLUB keeps growing with the true MI (FactorCL, Exp. 1).

x, y in R^20 with a known MI that steps through 2, 4, 6, 8, 10 nats (4000 steps each, fresh
batches of 64, a concat critic with one hidden layer of 512, Adam 5e-3). InfoNCE is a lower
bound that can never exceed log 64 = 4.16 nats. NCE-CLUB reads an upper bound off the *same*
InfoNCE-trained critic (mean positive score minus mean score over all pairs); it lands
between the true MI and its value at the optimal critic, I + lautum information.

Usage: python examples/gaussian_mi.py [--out DIR] [--quick]
"""

import argparse
import math

from factorcl_jax import mi_benchmark
from factorcl_jax.data import mi_tasks
from factorcl_jax.reporting import format_table, make_run_dir, write_json

BATCH = 64


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="3 short levels (~1 min)")
    args = parser.parse_args(argv)
    levels, steps, hidden = (2, 4, 6), 300, (256,)
    if not args.quick:
        levels, steps, hidden = (2, 4, 6, 8, 10), 4000, (512,)

    tasks = mi_tasks.staircase(dim=20, levels=levels)  # one correlated-Gaussian task per level
    results = {
        name: mi_benchmark.run_staircase(
            tasks, name, "concat", steps_per_level=steps, batch_size=BATCH, hidden=hidden
        )
        for name in ("infonce", "nce_club")
    }
    # Average of the last 500 estimates of each level (all of them when a level is shorter).
    estimates = {
        name: mi_benchmark.level_metrics(result.history, result.true_mi, min(500, steps))
        for name, result in results.items()
    }
    rows = [
        {
            "true_mi": task.true_mi,
            "infonce": float(estimates["infonce"]["estimate"][level]),
            "nce_club": float(estimates["nce_club"]["estimate"][level]),
            "nce_club_optimal": task.nce_club_optimal_value,
            "log_batch": math.log(BATCH),
        }
        for level, task in enumerate(tasks)
    ]
    print(format_table(rows, list(rows[0])))

    out = make_run_dir(args.out, "gaussian-mi")
    panel = mi_benchmark.StaircasePanel(
        title="d = 20",
        true_mi=results["infonce"].true_mi,
        optimal_value=results["infonce"].optimal_value,
        curves={"InfoNCE": results["infonce"].history, "NCE-CLUB": results["nce_club"].history},
    )
    png = mi_benchmark.plot_staircase([panel], out / "staircase.png", batch_size=BATCH)
    seconds = {
        name: {"compile_seconds": r.compile_seconds, "run_seconds": r.run_seconds}
        for name, r in results.items()
    }
    write_json(
        out / "results.json",
        {"rows": rows, "steps_per_level": steps, "hidden": hidden, "seconds": seconds},
    )
    print(f"wrote {out / 'results.json'} and {png}")


if __name__ == "__main__":
    main()
