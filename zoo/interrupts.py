"""Ctrl-C during training: stop at the end of the current step, never in the middle of one.

Python's own handler raises KeyboardInterrupt wherever the main thread happens to be: inside
PyTorch's zip writer (the checkpoint fails with "unexpected pos"), inside TensorBoard's event
queue (its writer can then hang when closed), inside an env. While `zoo train` runs SB3's
learn, a Ctrl-C only sets a flag instead, and a callback ends learn() at the next step, the
way SB3 callbacks stop training. A second Ctrl-C quits at once: files are written under
temporary names, so the newest complete checkpoint stays usable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from stable_baselines3.common.callbacks import BaseCallback

from zoo.errors import EXIT_INTERRUPTED


class StopRequest:
    """Set by the first Ctrl-C."""

    def __init__(self) -> None:
        self.requested = False


class StopWhenRequested(BaseCallback):
    """Ends SB3's learn() after the step in which Ctrl-C was pressed."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request

    def _on_step(self) -> bool:
        return not self.request.requested


def python_handles_ctrl_c() -> bool:
    """Ctrl-C would raise KeyboardInterrupt here: the main thread, Python's own handler."""
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


@contextlib.contextmanager
def ctrl_c_requests_a_stop(warn: Callable[[str], None]) -> Iterator[StopRequest]:
    """Within the block a first Ctrl-C sets the request and a second quits the process.

    Only in the main thread and where Ctrl-C would raise KeyboardInterrupt (Python's own
    handler is installed); elsewhere the request is never set and KeyboardInterrupt keeps
    its usual course. After a request the quitting handler stays installed: the run is on
    its way to its final save, where a further Ctrl-C must not raise either.
    """
    request = StopRequest()
    if not python_handles_ctrl_c():
        yield request
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            warn("zoo: interrupted again: quitting without a new checkpoint")
            os._exit(EXIT_INTERRUPTED)
        request.requested = True
        warn("zoo: Ctrl-C: stopping after the current step (Ctrl-C again quits at once)")

    signal.signal(signal.SIGINT, stop)
    try:
        yield request
    finally:
        if not request.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
