"""Multi-host: two OS processes with 2 CPU devices each train like one process with 4.

The processes join through ``jax.distributed.initialize`` on a loopback coordinator (JAX's
own multi-controller runtime; CPU collectives between processes go through gloo). A launch
never hangs the test: it ends when every process has exited, at the first process that
fails (the others are killed), or at its timeout (all are killed).
"""

import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from test_parallel import FAST_COMPILE, KEY, exact_trainer
from test_train import tiny_data

from factorcl_jax.training import loop, parallel

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = dict(method="FactorCL-SSL", num_rows=64, epochs=2, batch_size=32, seed=5)
NUM_PROCESSES = 2

WORKER = """
import json, os, sys

config = json.loads(sys.argv[1])
if int(os.environ["JAX_PROCESS_ID"]) == config.get("exit_process"):
    sys.exit(config["exit_code"])  # before joining: the others wait for it in vain

import jax
import numpy as np

from factorcl_jax.training import parallel

parallel.initialize_distributed()  # from JAX_COORDINATOR_ADDRESS, _NUM_PROCESSES, _PROCESS_ID
assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)

from test_multihost import RUN
from test_parallel import KEY, exact_trainer
from test_train import tiny_data

trainer = exact_trainer(RUN["method"])
data = tiny_data(RUN["num_rows"])
mesh = parallel.data_mesh()
state = parallel.replicate_state(trainer.init(KEY, data), mesh)
state, history = parallel.fit(
    trainer,
    state,
    parallel.process_shard(data),
    mesh=mesh,
    epochs=RUN["epochs"],
    batch_size=RUN["batch_size"],
    seed=RUN["seed"],
    progress=False,
)
if parallel.is_main_process():
    leaves = jax.tree.leaves(jax.device_get((state.params, state.club_params)))
    np.savez(config["out"], *leaves, losses=[h["loss"] for h in history])
print(f"process {jax.process_index()} took {len(history)} steps", flush=True)
"""


@dataclasses.dataclass
class Launch:
    returncodes: list[int]
    logs: list[str]
    seconds: float
    failure: str | None  # why the launch failed; None when every process exited with 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(tmp_path, config, *, timeout) -> Launch:
    """Runs the worker as ``NUM_PROCESSES`` processes with 2 CPU devices each."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    environment = {
        **os.environ,
        # As in the test: fast compiles (the flags' meaning is FAST_COMPILE's).
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 "
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
        "JAX_PLATFORMS": "cpu",
        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "JAX_NUM_PROCESSES": str(NUM_PROCESSES),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    }
    log_paths = [tmp_path / f"process{index}.log" for index in range(NUM_PROCESSES)]
    processes = []
    for index, log_path in enumerate(log_paths):
        with log_path.open("w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(script), json.dumps(config)],
                    env={**environment, "JAX_PROCESS_ID": str(index)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    start = time.monotonic()
    failure = None
    try:
        while failure is None:
            codes = [process.poll() for process in processes]
            failed = [index for index, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                failure = f"process {failed[0]} exited with {codes[failed[0]]}"
            elif all(code == 0 for code in codes):
                break
            elif time.monotonic() - start > timeout:
                failure = f"timed out after {timeout} s"
            else:
                time.sleep(0.1)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        returncodes = [process.wait(timeout=30) for process in processes]
    logs = [path.read_text() for path in log_paths]
    return Launch(returncodes, logs, time.monotonic() - start, failure)


def single_process_run(data):
    """The multi-host run replayed on 4 devices of this process: (params, club_params, losses).

    Step ``k`` of ``parallel.fit`` on 2 processes trains on the concatenation of each
    process's batch ``k`` of its shard.
    """
    trainer = exact_trainer(RUN["method"])
    mesh = parallel.data_mesh(jax.devices()[:4])
    state = parallel.replicate_state(trainer.init(KEY, data), mesh)
    shards = [parallel.process_shard(data, index, NUM_PROCESSES) for index in range(2)]
    step, losses = None, []
    for epoch in range(RUN["epochs"]):
        local_batches = [
            loop.batches(shard, RUN["batch_size"] // 2, seed=RUN["seed"], epoch=epoch)
            for shard in shards
        ]
        for parts in zip(*local_batches, strict=True):
            batch = parallel.shard_batch(
                {name: np.concatenate([part[name] for part in parts]) for name in parts[0]},
                mesh,
            )
            if step is None:
                step = parallel.sharded_step(trainer, mesh).lower(state, batch)
                step = step.compile(FAST_COMPILE)
            state, measured = step(state, batch)
            losses.append(float(measured["loss"]))
    return jax.device_get((state.params, state.club_params)), losses


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_four_devices(tmp_path):
    out = tmp_path / "params.npz"
    result = launch(tmp_path, {"out": str(out)}, timeout=300)
    assert result.failure is None, (result.failure, result.logs)
    steps = RUN["epochs"] * (RUN["num_rows"] // RUN["batch_size"])
    for index, log in enumerate(result.logs):
        assert f"process {index} took {steps} steps" in log, log
    saved = np.load(out)
    expected, expected_losses = single_process_run(tiny_data(RUN["num_rows"]))
    np.testing.assert_allclose(saved["losses"], expected_losses, rtol=1e-6, atol=1e-6)
    leaves = jax.tree.leaves(expected)
    assert len(saved.files) == len(leaves) + 1
    for index, leaf in enumerate(leaves):
        np.testing.assert_allclose(saved[f"arr_{index}"], leaf, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exit_code", "failure"),
    [(3, "process 1 exited with 3"), (0, "timed out after 5 s")],
    ids=["crash-fails-fast", "silent-exit-times-out"],
)
def test_a_launch_whose_process_dies_ends_within_its_bound(tmp_path, exit_code, failure):
    # Process 1 leaves before joining, so process 0 waits for it in `initialize`. A crash is
    # seen at once; a clean exit (nothing to see) leaves the waiting survivor to the timeout.
    result = launch(tmp_path, {"exit_process": 1, "exit_code": exit_code}, timeout=5)
    assert result.failure == failure
    assert result.seconds < 5 + 15
    assert result.returncodes[1] == exit_code
    assert result.returncodes[0] < 0, "the survivor was not killed"
