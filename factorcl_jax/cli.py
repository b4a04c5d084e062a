"""The ``factorcl-jax`` command (also ``python -m factorcl_jax``).

Subcommands::

    train      train methods on the built-in synthetic data, checkpoint, probe, plot
    probe      linear-probe a trained run's checkpoint on a data split
    estimate   estimate the MI between two arrays from .npy / .npz / .csv files
    bench      run the benchmarks with a quick preset

A user mistake (unknown method, bad override, unreadable file, mismatched arrays, ...) prints
one line ``factorcl-jax: error: ...`` and exits with status 2; ``--traceback`` shows the
Python traceback instead.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in what the user asked for; reported in one line with exit status 2."""


# ---------------------------------------------------------------- train


def _resolve_config(args: argparse.Namespace):
    from factorcl_jax import config as config_lib

    base = config_lib.get_preset(args.preset)
    resolved = config_lib.load_config(args.config, base) if args.config else base
    overrides = list(args.overrides)
    if args.method:
        overrides.append(f"train.methods={','.join(args.method)}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    return config_lib.apply_overrides(resolved, overrides)


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _command_train(args: argparse.Namespace) -> int:
    from factorcl_jax import reporting, run

    if args.coordinator_address or args.num_processes is not None:
        from factorcl_jax import parallel

        parallel.initialize_distributed(
            coordinator_address=args.coordinator_address,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    config = _resolve_config(args)
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR, the run directory to continue")
    if args.resume and not pathlib.Path(args.out).is_dir():
        raise UsageError(f"--resume: run directory {args.out} does not exist")
    run_dir = reporting.make_run_dir(args.out, "train")
    echo = (lambda *_: None) if args.quiet else print
    run.train_run(
        config,
        run_dir,
        resume=args.resume,
        progress=_progress_enabled(args),
        echo=echo,
        devices=args.devices,
    )
    return 0


# ---------------------------------------------------------------- probe


def _command_probe(args: argparse.Namespace) -> int:
    import json

    import jax

    from factorcl_jax import config as config_lib
    from factorcl_jax import evaluation, run
    from factorcl_jax.checkpoint import Checkpointer

    run_dir = pathlib.Path(args.run)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    config = config_lib.from_dict(json.loads(config_path.read_text()))
    methods = args.method or list(config.train.methods)
    splits = run.load_splits(config)
    num_classes = evaluation.num_classes_of(splits["train"], splits["test"])
    representation = args.representation or config.train.probe_representation
    results = {}
    for method in methods:
        if method not in config.train.methods:
            raise UsageError(
                f"method {method!r} was not trained in {run_dir}; it has "
                f"{', '.join(config.train.methods)}"
            )
        steps_per_epoch = len(splits["train"]["y"]) // config.train.batch_size
        trainer = run.build_trainer(config, method, num_classes, steps_per_epoch)
        example = {k: v[: config.train.batch_size] for k, v in splits["train"].items()}
        abstract = jax.eval_shape(trainer.init, jax.random.key(0), example)
        restored = Checkpointer(run_dir / "checkpoints" / run.method_slug(method)).restore_latest(
            abstract
        )
        if restored is None:
            raise UsageError(f"no loadable checkpoint for {method} in {run_dir}")
        state, meta = restored
        accuracy = evaluation.probe_accuracies(
            trainer,
            state.params,
            splits["train"],
            splits[args.split],
            num_classes=num_classes,
            representations=(representation,),
        )[representation]
        results[method] = accuracy
        print(
            f"{method}: step {meta['step']}, {args.split} accuracy {accuracy:.4f} "
            f"({representation})"
        )
    return 0 if results else USAGE_ERROR


# ---------------------------------------------------------------- estimate


def _load_table(path: pathlib.Path, key: str | None) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if key is None:
                    raise UsageError(
                        f"{path} is an .npz: say which array with --x-key/--y-key "
                        f"(it has {', '.join(archive.files)})"
                    )
                if key not in archive.files:
                    raise UsageError(
                        f"{path} has no array {key!r} (it has {', '.join(archive.files)})"
                    )
                array = archive[key]
        elif suffix == ".csv":
            array = _load_csv(path)
        else:
            raise UsageError(f"{path}: unsupported file type {suffix!r} (use .npy, .npz, .csv)")
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise UsageError(f"{path}: expected a [rows, features] array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise UsageError(f"{path}: expected numbers, got dtype {array.dtype}")
    return array.astype(np.float32)


def _load_csv(path: pathlib.Path) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=1)


def _command_estimate(args: argparse.Namespace) -> int:
    from factorcl_jax import estimate, plotting, reporting

    x_path = pathlib.Path(args.x)
    y_path = pathlib.Path(args.y) if args.y else x_path
    if args.y is None and x_path.suffix.lower() != ".npz":
        raise UsageError("give two files X Y, or one .npz with --x-key and --y-key")
    x = _load_table(x_path, args.x_key)
    y = _load_table(y_path, args.y_key)
    if x.shape[0] != y.shape[0]:
        raise UsageError(
            f"X and Y must have the same number of rows (paired samples), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    estimator = estimate.get_estimator(args.bound)
    critic = None
    if args.critic != "concat" or args.hidden is not None:
        kind = "gaussian" if estimator.gaussian else args.critic
        critic = estimate.make_critic(kind, args.hidden or (64,))
    result = estimate.estimate_mi(
        x,
        y,
        bound=args.bound,
        critic=critic,
        hidden=args.hidden,
        batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        eval_every=args.eval_every,
        patience=args.patience,
        heldout_fraction=args.heldout_fraction,
        folds=args.folds,
        seed=args.seed,
    )
    settings = result.settings
    print(result.summary())
    print(
        f"in-sample (training pairs): {result.in_sample:.3g} nats; critic "
        f"{type(critic).__name__ if critic else 'ConcatCritic'} {list(settings.hidden)}, "
        f"batch {settings.batch_size}, {result.steps_run} steps, {result.seconds:.1f} s"
    )
    if args.out or args.plot:
        out = reporting.make_run_dir(args.out, "estimate")
        summary = {
            "bound": args.bound,
            "estimate_nats": result.estimate,
            "stderr_nats": result.stderr,
            "in_sample_nats": result.in_sample,
            "heldout_pairs": result.num_heldout,
            "train_pairs": result.num_train,
            "folds": result.folds,
            "best_step": result.best_step,
            "steps_run": result.steps_run,
            "rows": int(x.shape[0]),
            "x_features": int(x.shape[1]),
            "y_features": int(y.shape[1]),
            "settings": {**vars(settings), "hidden": list(settings.hidden)},
            "seconds": result.seconds,
            "curve": {k: v.tolist() for k, v in result.curve.items()},
            "history": result.history.tolist(),
        }
        reporting.write_json(out / "results.json", summary)
        if args.plot:
            path = plotting.plot_mi_history(
                result.history, out / "mi_history.png", bound=args.bound, estimate=result.estimate
            )
            print(f"plot: {path}")
        print(f"wrote {out / 'results.json'}")
    return 0


# ---------------------------------------------------------------- bench

BENCHMARKS = {
    "mi": "mi_estimation",
    "mi_speed": "mi_speed",
    "bounds": "bounds",
    "train_step": "train_step",
    "scaling": "scaling",
}
"""``factorcl-jax bench NAME`` runs ``benchmarks/SCRIPT.py`` of a source checkout."""


def _benchmarks_folder() -> pathlib.Path:
    """The ``benchmarks/`` folder of the source checkout this package runs from, or of the
    current directory when that is a checkout; a wheel install ships none."""
    package_root = pathlib.Path(__file__).resolve().parents[1]
    for root in (package_root, pathlib.Path.cwd()):
        folder = root / "benchmarks"
        if (folder / "common.py").is_file() and (root / "factorcl_jax").is_dir():
            return folder
    raise UsageError(
        "benchmarks run from a source checkout: clone the repository and run `factorcl-jax "
        "bench` inside it (or `python benchmarks/NAME.py`); this installation at "
        f"{package_root} has no benchmarks/ folder"
    )


def _command_bench(args: argparse.Namespace) -> int:
    folder = _benchmarks_folder()
    names = [args.name] if args.name != "all" else list(BENCHMARKS)
    quick = [] if args.full else ["--quick"]
    for name in names:
        out = [] if args.out is None else ["--out", str(pathlib.Path(args.out) / name)]
        print(f"== benchmark: {name} ==", flush=True)
        completed = subprocess.run(
            [sys.executable, str(folder / f"{BENCHMARKS[name]}.py"), *quick, *out, *args.extra],
            check=False,
        )
        if completed.returncode != 0:
            return completed.returncode
    return 0


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with mistakes reported as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from factorcl_jax import objectives
    from factorcl_jax.config import PRESETS

    parser = _Parser(prog="factorcl-jax", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--traceback", action="store_true", help="show Python tracebacks instead of one-line errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train and evaluate on the built-in synthetic data",
        description="Train methods on the built-in synthetic data (shared and unique "
        "information), checkpoint them, and report linear-probe test accuracy. "
        "With no arguments: FactorCL-SSL and SimCLR with the CPU preset.",
    )
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="config overrides, e.g. train.epochs=3 model.embed_dim=32",
    )
    train.add_argument(
        "--method",
        action="append",
        choices=list(objectives.METHODS),
        metavar="METHOD",
        help=f"method to train (repeatable); one of: {', '.join(objectives.METHODS)}",
    )
    train.add_argument("--config", help="config file (.toml, .json, .yaml)")
    train.add_argument(
        "--preset", default="cpu", choices=list(PRESETS), help="base configuration (default: cpu)"
    )
    train.add_argument("--out", help="run directory (default: a new runs/train-...)")
    train.add_argument("--seed", type=int, help="training seed (train.seed)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest complete checkpoint",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    train.add_argument(
        "--devices",
        type=_positive_int,
        help="train data-parallel over this many devices (default: 1; every "
        "device in a multi-process run)",
    )
    train.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        help="multi-host: address of process 0 (or JAX_COORDINATOR_ADDRESS)",
    )
    train.add_argument(
        "--num-processes",
        type=_positive_int,
        help="multi-host: number of processes (or JAX_NUM_PROCESSES)",
    )
    train.add_argument(
        "--process-id", type=int, help="multi-host: this process's index (or JAX_PROCESS_ID)"
    )
    train.set_defaults(handler=_command_train)

    probe = commands.add_parser(
        "probe",
        help="linear-probe a trained run's checkpoints",
        description="Fit a linear probe on the training split's "
        "frozen representations of a run's latest "
        "checkpoint and score a split.",
    )
    probe.add_argument("run", help="run directory written by `factorcl-jax train`")
    probe.add_argument("--method", action="append", help="method(s) to probe (default: all)")
    probe.add_argument("--split", default="test", choices=["train", "validation", "test"])
    probe.add_argument(
        "--representation",
        choices=["encoders", "factorized"],
        help="default: the run's train.probe_representation",
    )
    probe.set_defaults(handler=_command_probe)

    estimate = commands.add_parser(
        "estimate",
        help="estimate I(X; Y) between two arrays",
        description="Train a critic on half of the paired rows of X and Y (early-stopped on "
        "the other half) and report the held-out MI estimate with its standard error, "
        "beside the in-sample value. Files: .npy, .csv (rows = samples; a header line is "
        "skipped), or one .npz with --x-key/--y-key. 1-D arrays are one feature.",
    )
    estimate.add_argument("x", help="X samples (.npy/.npz/.csv)")
    estimate.add_argument("y", nargs="?", help="Y samples (omit with an .npz and keys)")
    estimate.add_argument("--x-key", help="array name of X inside an .npz")
    estimate.add_argument("--y-key", help="array name of Y inside an .npz")
    estimate.add_argument(
        "--bound",
        default="infonce",
        help="infonce (default), nce_club, nwj, dv, mine, js, smile or club",
    )
    estimate.add_argument("--critic", default="concat", choices=["concat", "separable"])
    estimate.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        help="critic hidden widths (default: one layer sized to the data)",
    )
    estimate.add_argument(
        "--steps", type=_positive_int, help="training-step budget (default: sized to the data)"
    )
    estimate.add_argument("--batch-size", type=_positive_int, help="default: sized to the data")
    estimate.add_argument("--learning-rate", type=float, help="Adam learning rate (3e-3)")
    estimate.add_argument(
        "--eval-every", type=_positive_int, help="steps between held-out evaluations (100)"
    )
    estimate.add_argument(
        "--patience", type=_positive_int, help="evaluations without progress before stopping (3)"
    )
    estimate.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.5,
        help="share of the pairs held out for the estimate (default 0.5)",
    )
    estimate.add_argument(
        "--folds", type=int, help="k-fold estimation: k trainings, each fold held out once"
    )
    estimate.add_argument("--seed", type=int, default=0)
    estimate.add_argument("--plot", action="store_true", help="save the estimate's curve (PNG)")
    estimate.add_argument("--out", help="directory for results.json (and the plot)")
    estimate.set_defaults(handler=_command_estimate)

    bench = commands.add_parser(
        "bench",
        help="run the benchmarks (quick preset)",
        description="Run the scripts of benchmarks/ (in a source checkout) with their quick "
        "preset: mi (estimators on known-MI tasks), mi_speed (the estimator loop against a "
        "roofline), bounds, train_step, scaling, or all.",
    )
    bench.add_argument("name", nargs="?", default="all", choices=["all", *BENCHMARKS])
    bench.add_argument(
        "extra", nargs=argparse.REMAINDER, help="further arguments passed to the benchmark"
    )
    bench.add_argument("--full", action="store_true", help="the full preset, not --quick")
    bench.add_argument("--out", help="output directory (one subdirectory per benchmark)")
    bench.set_defaults(handler=_command_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    from factorcl_jax.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, ConfigError, ValueError, TypeError, OSError) as error:
        if args.traceback:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"factorcl-jax: error: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
