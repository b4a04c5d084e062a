"""StopSignals records the first SIGTERM/SIGINT, interrupts at once on a second one, and puts
the previous handlers back (in-process: the end-to-end resume runs are in test_faults)."""

import os
import signal

import pytest

from factorcl_jax.runs.preemption import Interrupted, StopSignals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_is_recorded_second_interrupts_and_handlers_come_back(signum):
    before = signal.getsignal(signum)
    with StopSignals() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signum)  # delivered before os.kill returns on the main thread
        assert stop.requested() and stop.signum == signum
        with pytest.raises(Interrupted) as second:
            os.kill(os.getpid(), signum)
        assert not second.value.saved and second.value.exit_status == 128 + signum
    assert signal.getsignal(signum) is before


def test_interrupted_names_the_signal_step_and_exit_status():
    error = Interrupted(signal.SIGTERM, step=7, saved=True)
    assert error.exit_status == 143
    assert "SIGTERM" in str(error) and "step 7" in str(error) and "--resume" in str(error)
