"""Stop a training loop cleanly on SIGTERM (preemption), SIGINT (Ctrl-C) or SIGHUP (a closed
terminal or a dropped remote login).

Saving from inside a signal handler is unsafe (the handler runs between two bytecodes of
whatever the process was doing, possibly half-way through a checkpoint write), so
:class:`StopSignals` only records the signal; the training loop asks
:meth:`StopSignals.requested` after every step, saves a checkpoint at the current step and raises
:class:`Interrupted`, which the command turns into one line and exit status ``128 + signal``
(143 for SIGTERM, 130 for SIGINT, 129 for SIGHUP). A second signal while the first is being honoured
interrupts at once (:class:`Interrupted` with ``saved=False``); the run then resumes from its
last complete checkpoint.

In a multi-process run the processes must agree on the step at which they save (an Orbax
save is collective), so there the handlers are not installed: JAX's preemption service
catches SIGTERM and :func:`jax.experimental.multihost_utils.reached_preemption_sync_point`
names the same step on every process.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import jax

__all__ = ["Interrupted", "StopSignals"]

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals that stop training cleanly."""


class Interrupted(Exception):
    """Training stopped on a signal.

    Attributes:
      signum: the signal number.
      step: the step of the checkpoint saved on the way out (``None`` when not saved).
      saved: whether a checkpoint at ``step`` was written.
      exit_status: ``128 + signum``, the shell's convention.
    """

    def __init__(self, signum: int, step: int | None = None, saved: bool = False) -> None:
        self.signum = signum
        self.step = step
        self.saved = saved
        self.exit_status = 128 + signum
        name = signal.Signals(signum).name
        if saved:
            message = (
                f"stopped by {name} after step {step}: saved a checkpoint there; continue "
                "with --resume"
            )
        else:
            message = f"stopped by {name}; --resume continues from the last complete checkpoint"
        super().__init__(message)


class StopSignals:
    """Context manager: while active, the :data:`SIGNALS` set a flag instead of killing.

    Example::

        with StopSignals() as stop:
            for step in ...:
                train_one_step()
                if stop.requested():
                    save_checkpoint()
                    raise Interrupted(stop.signum, step, saved=True)
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._multi_process = False
        self._steps = 0

    def __enter__(self) -> StopSignals:
        self._multi_process = jax.process_count() > 1
        # Python only lets the main thread install handlers; elsewhere signals keep their
        # default behaviour.
        if not self._multi_process and threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def requested(self) -> bool:
        """Whether to stop now; call it once after every training step.

        In a multi-process run every process must call it at every step: the calls are
        counted and the count is the step id the processes agree on.
        """
        self._steps += 1
        if self._multi_process and self.signum is None:
            from jax.experimental import multihost_utils

            try:
                reached = multihost_utils.reached_preemption_sync_point(self._steps)
            except RuntimeError:  # JAX's preemption service is disabled
                self._multi_process = False
            else:
                if reached:
                    self.signum = signal.SIGTERM
        return self.signum is not None
