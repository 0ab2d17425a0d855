"""`compile`: the TD update of DQN and QR-DQN as one `torch.compile`d function.

What is compiled, per gradient step, from a sampled (and augmented) batch: the online and
target forward passes, the loss, the backward pass, gradient clipping and the optimizer step.
On CUDA it is compiled with mode "reduce-overhead", which captures it as CUDA graphs: one
launch instead of many small kernels. Sampling and augmentation stay outside: compiled code
draws random numbers with its own generator, and exact resume rests on PyTorch's.

The learning rate is handed to the optimizer as one tensor per parameter group, refilled
from the schedule before each phase: a changing float would make the compiled step compile
again at every new value.

`compile: auto` compiles where it measured faster. On the 2-core CPU VMs the compiled update
was no faster than the eager one (the convolutions, already oneDNN kernels, take the time;
`benchmarks/throughput.py --backends ale ale+compile`), so `auto` is eager on the CPU. On CUDA it
compiles: that is where launch overhead dominates (zoo's GPU profile in the performance guide);
`benchmarks/gpu_check.sh` measures both.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch as th

from zoo.core.errors import first_line

# Setting of `compile` -> whether to compile, for `auto`, by device type.
AUTO = "auto"
COMPILED_BY_DEFAULT_ON: frozenset[str] = frozenset({"cuda"})

UpdateFunction = TypeVar("UpdateFunction", bound=Callable[..., Any])


def wants_compiling(setting: bool | str, device: th.device) -> bool:
    """Whether `compile: setting` compiles the update on `device` (True, False or "auto")."""
    if setting == AUTO:
        return device.type in COMPILED_BY_DEFAULT_ON
    return bool(setting)


@functools.cache
def compile_failure(device_type: str) -> str | None:
    """Why torch.compile cannot compile here, in one line, or None when it can: a tiny
    function is compiled and run on the device (seconds; once per process)."""
    inductor_log = logging.getLogger("torch._inductor")
    level = inductor_log.level
    inductor_log.setLevel(logging.ERROR)  # its warnings about a failed build: the line says it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = th.compile(_probe, dynamic=False)
            probe(th.ones(4, device=device_type))
    except Exception as error:
        return first_line(error)
    finally:
        inductor_log.setLevel(level)
    return None


def _probe(values: th.Tensor) -> th.Tensor:
    return values * 2 + 1


class _ProfilerSpanNotice(logging.Filter):
    """Drops torch.compile's notice that the optimizer step's profiler span is not traced:
    it is printed at every start and says nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Profiler record function")


def compiled(update: UpdateFunction, device: th.device) -> UpdateFunction:
    """`update` compiled with static shapes; as CUDA graphs on CUDA."""
    notices = logging.getLogger("torch._dynamo.variables.ctx_manager")
    if not any(isinstance(one, _ProfilerSpanNotice) for one in notices.filters):
        notices.addFilter(_ProfilerSpanNotice())
    mode = "reduce-overhead" if device.type == "cuda" else None
    return th.compile(update, mode=mode, dynamic=False)  # type: ignore[return-value]


def is_compile_error(error: BaseException) -> bool:
    """Whether `error` is torch.compile failing (not the update's own arithmetic)."""
    return isinstance(error, th._dynamo.exc.TorchDynamoException)


class LearningRateTensors:
    """One learning-rate tensor per parameter group of an optimizer, kept in the group:
    `refill` copies in the float that SB3's schedule has just written there."""

    def __init__(self, optimizer: th.optim.Optimizer, device: th.device) -> None:
        self.tensors = [
            th.tensor(float(group["lr"]), device=device) for group in optimizer.param_groups
        ]

    def refill(self, optimizer: th.optim.Optimizer) -> None:
        for group, tensor in zip(optimizer.param_groups, self.tensors, strict=True):
            if group["lr"] is not tensor:
                tensor.fill_(float(group["lr"]))
                group["lr"] = tensor
