"""Ctrl-C and SIGTERM: the one module that installs signal handlers; the others ask it.

SIGTERM is what Slurm, Kubernetes, systemd and `docker stop` send before they kill a job, so
it is handled as Ctrl-C is: `zoo` makes it raise `Terminated` (a KeyboardInterrupt) wherever
Ctrl-C would raise KeyboardInterrupt, and the exit code says which signal it was (130, 143).

Python's own handler raises KeyboardInterrupt wherever the main thread happens to be: inside
PyTorch's zip writer (the checkpoint fails with "unexpected pos"), inside TensorBoard's event
queue (its writer can then hang when closed), inside an env. While `zoo train` runs SB3's
learn, a first signal only sets a flag instead, and a callback ends learn() at the next
rollout boundary, the way SB3 callbacks stop training. While a file is written the signal is
held until the file is complete. A second signal quits at once: files are written under
temporary names, so the newest complete checkpoint stays usable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from stable_baselines3.common.callbacks import BaseCallback

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
Handler = Callable[[int, FrameType | None], None]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt."""


def exit_code(signum: int) -> int:
    """The exit code of a process stopped by `signum`, as shells report it (130, 143)."""
    return 128 + signum


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal a KeyboardInterrupt stands for: SIGTERM for Terminated, else SIGINT."""
    return signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    return exit_code(signal_of(interrupt))


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def own_stop_signals() -> None:
    """From now on, in the main thread, Ctrl-C raises KeyboardInterrupt and SIGTERM raises
    Terminated, whatever the process inherited (Python's default for SIGTERM would end it
    with nothing saved).

    A job that a script starts in the background (`zoo train ... &`, as in sbatch scripts)
    inherits SIGINT ignored. Left so, the stop request below was never set up and SIGTERM
    landed anywhere: in PyTorch's zip writer, mid-rollout, before run.yml was updated."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_terminated)


def signal_name(signum: int) -> str:
    """How messages name a stop signal: "Ctrl-C", "SIGTERM"."""
    return _NAMES.get(signum, signal.Signals(signum).name)


def python_handles_ctrl_c() -> bool:
    """Ctrl-C would raise KeyboardInterrupt here: the main thread, Python's own handler."""
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


@contextlib.contextmanager
def _handling(handler: Handler) -> Iterator[None]:
    """`handler` for Ctrl-C and SIGTERM inside the block; the previous handlers after it."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _nothing() -> None:
    return None


def _quit_now(
    signum: int,
    what: str,
    warn: Callable[[str], None] = _to_stderr,
    before_exit: Callable[[], None] = _nothing,
) -> None:
    warn(f"zoo: interrupted again ({signal_name(signum)}): quitting without {what}")
    before_exit()  # e.g. run.yml says the run was interrupted, not still running
    os._exit(exit_code(signum))


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


class StopWhenRequested(BaseCallback):
    """Ends SB3's learn() at the rollout boundary after a stop request.

    The stop lands where a rollout ends, as in a run that was never stopped: a resumed run
    then collects its rollouts, logs its rows and saves its checkpoints at the very steps an
    uninterrupted one does. SB3 can only stop from inside a step, so the first step of the
    next rollout is taken back: its transition is never stored and the step counter returns
    to the boundary (the games in play are not part of a checkpoint anyway).
    """

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request
        self._first_step_of_rollout = False

    def _on_rollout_start(self) -> None:
        self._first_step_of_rollout = True

    def _on_step(self) -> bool:
        first, self._first_step_of_rollout = self._first_step_of_rollout, False
        if self.request.requested and first:
            self.model.num_timesteps -= self.training_env.num_envs
            return False
        return True


@contextlib.contextmanager
def stop_requests(
    warn: Callable[[str], None] = _to_stderr, before_quitting: Callable[[], None] = _nothing
) -> Iterator[StopRequest]:
    """Within the block a first Ctrl-C or SIGTERM sets the request, a second quits (after
    `before_quitting`).

    Only in the main thread and where Ctrl-C would raise KeyboardInterrupt (Python's own
    handler is installed); elsewhere the request is never set and KeyboardInterrupt keeps
    its usual course. After a request the quitting handler stays installed: the run is on
    its way to its final save, where a further signal must not raise either.
    """
    request = StopRequest()
    if not python_handles_ctrl_c():
        yield request
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            _quit_now(signum, "a new checkpoint", warn, before_quitting)
        request.signum = signum
        name = signal_name(signum)
        warn(f"zoo: {name}: stopping at the end of this rollout ({name} again quits at once)")

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        yield request
    finally:
        if not request.requested:
            for signum, old in previous.items():
                signal.signal(signum, old)


@contextlib.contextmanager
def signals_after_the_write() -> Iterator[None]:
    """Hold a Ctrl-C or SIGTERM that comes while a file is written until it is complete.

    Raised inside PyTorch's zip writer, KeyboardInterrupt comes out as a RuntimeError
    ("unexpected pos"): a Ctrl-C during a periodic checkpoint ended the run with a traceback
    and without its final checkpoint. A second signal still quits at once: the file is only
    under its temporary name, so nothing saved before is touched. Only where Ctrl-C would
    raise KeyboardInterrupt (the main thread, Python's own handler); a handler of zoo's, such
    as the one that quits during the final save, stays in charge.
    """
    if not python_handles_ctrl_c():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if held:
            _quit_now(signum, "this file")
        held.append(signum)
        _to_stderr("zoo: stopping once the file being written is complete")

    with _handling(hold):
        yield
    if held:
        raise Terminated if held[0] == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def a_second_signal_quits(
    interrupted: bool, warn: Callable[[str], None], before_quitting: Callable[[], None] = _nothing
) -> Iterator[None]:
    """After a stop request, while the final checkpoint and model are saved: another signal
    ends the process at once (after `before_quitting`). Every file is written under a temporary name and renamed, so
    quitting mid-save leaves the previous checkpoint and model intact; the unfinished
    checkpoint has no manifest and is never used."""
    if not interrupted or threading.current_thread() is not threading.main_thread():
        yield
        return

    def quit_now(signum: int, frame: FrameType | None) -> None:
        _quit_now(signum, "this checkpoint", warn, before_quitting)

    for signum in STOP_SIGNALS:
        signal.signal(signum, quit_now)
    yield
    # Saved: the process is on its way out. Ignoring further signals keeps the interpreter's
    # shutdown (which restores the default handlers) from dying of one with no exit code.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def stop_when_orphaned(parent: int, poll_seconds: float = 1.0) -> None:
    """SIGTERM this process once its parent is gone (kill -9 of `zoo benchmark`, or of a
    tune worker): the cell or seed run then stops at its step boundary with a checkpoint, as
    it would for the parent's SIGTERM, instead of training on unseen. A thread that polls the parent's pid works on every
    POSIX system, where PR_SET_PDEATHSIG is Linux's alone. `parent` is the pid the parent
    gave, so a parent gone before the thread starts is noticed too."""

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
