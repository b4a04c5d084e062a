"""MI estimators under jit on tasks with known MI: the Gaussian staircase and fixed samples.

Every estimator of factorcl_jax.estimate (InfoNCE, NCE-CLUB, CLUB, NWJ, DV, MINE, JS, SMILE)
with concat and separable critics: per staircase level the bias, variance and MSE of the
last 500 logged estimates, compile and run seconds of each compiled program, the paper's
staircase figures (staircase-gaussian.png, staircase-cubic.png) and fixed-sample estimates
with early stopping. The code lives in factorcl_jax.mi_benchmark (also `factorcl-jax bench mi`).

Usage: python benchmarks/mi_estimation.py [--out DIR] [--quick] [--help for the options]
"""

from factorcl_jax.mi_benchmark import main

if __name__ == "__main__":
    main()
