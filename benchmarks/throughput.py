"""Env backends side by side: agent steps per second of env stepping alone and of training.

    python benchmarks/throughput.py --env Breakout --algo a2c dqn --steps 20000

`--algo` takes every algo of `zoo train` (dqn, a2c, ppo, qrdqn, ppo_lstm, trpo).

For each algo, each backend (`--backends`, default `stock sb3 ale`; `NAME:N` sets its
n_envs; `NAME+compile` trains with `compile: true`, the others with `compile: false`) runs
back to back in this one process: first random actions on the env alone
(`--env-steps`), then training with the shipped hyperparameters for the game (`--set`
changes any of them, for every backend alike). `stock` is SB3 as it runs on its own: its
AtariWrapper stack in a DummyVecEnv, convolution weights in PyTorch's default layout and
SB3's per-tensor Adam; `sb3` is the same env stack with zoo's network settings
(channels-last convolutions, fused Adam); `ale` adds ale-py's C++ vector env. Only the
steps after an untimed warm-up are timed; for DQN, QR-DQN and C51 learning_starts is lowered to
half of `--warmup`, so gradient steps are timed (and a compiled update has compiled in the
warm-up's second half), and epsilon stays at the schedule's final value, as over most of a run (at epsilon 1 no action needs the network).
`--device cuda` trains the networks on the GPU (the envs stay on the CPU). `--preset NAME`
applies a preset to every backend (`--algo c51 --preset rainbow`: Rainbow; with noisy nets
epsilon is 0 throughout; a 1M-transition preset may need `--set buffer_size=...` to fit).

`rl_zoo3` is the peer itself: rl-baselines3-zoo's ExperimentManager builds its model and env
from its own hyperparams/<algo>.yml (the `atari` section for a game), and the model trains
here as the others do (no callbacks, the same warm-up and epsilon). With it in the list, every
zoo backend trains rl_zoo3's settings too, read from that same file, so the ratio compares the
two toolkits on one configuration. It needs `pip install rl_zoo3` (not a zoo dependency).
Every backend gets the same PyTorch thread count (`--set torch_threads=N`, else zoo's choice).
`--repeat N` runs the backends in turn N times and reports the median and the range: other
processes on a small machine move single numbers a lot. Ratios are of medians, against the
first backend. `--profile N` prints the N functions with the most time of each training
measurement (cProfile). Numbers are printed, never asserted.
"""

from __future__ import annotations

import os

# Before PyTorch loads, as `zoo` does it (zoo/core/threads.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import cProfile
import io
import platform
import pstats
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import ale_py
import numpy as np
import stable_baselines3
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.config.config import Config, build_config
from zoo.core.errors import UserError
from zoo.core.threads import apply_torch_threads, cores
from zoo.envs.stack import make_vec_env_for
from zoo.schema.keys import SCHEMAS
from zoo.training.model_setup import build_model, resolve_device

# benchmarks/ is a folder of scripts, not a package: a helper module sits beside them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rl_zoo3_peer import hyperparams_file, rl_zoo3_run, section_keys

# The replay-based algos (dqn, qrdqn, c51): their learning_starts and epsilon are set here.
OFF_POLICY = tuple(algo for algo, schema in SCHEMAS.items() if "buffer_size" in schema.algorithm)


@dataclass(frozen=True)
class Backend:
    """`NAME[:N_ENVS]`: an env backend (ale, sb3, dummy, subproc), or `stock`: SB3's own
    stack as SB3 alone runs it (DummyVecEnv, contiguous convolution weights, per-tensor
    Adam), the baseline the ratios are taken against."""

    name: str
    n_envs: int | None  # None: the config's
    compiled: bool = False

    @classmethod
    def parse(cls, text: str) -> Backend:
        spec, plus, modifier = text.partition("+")
        if plus and modifier != "compile":
            raise UserError(f"{text!r}: the only modifier after '+' is compile")
        name, _, n_envs = spec.partition(":")
        if name not in BACKEND_NAMES:
            raise UserError(f"unknown backend {name!r}: use {', '.join(BACKEND_NAMES)}")
        if n_envs and not (n_envs.isdigit() and int(n_envs) > 0):
            raise UserError(f"{text!r}: the number after ':' is the envs, a positive integer")
        if name in ("stock", "rl_zoo3") and (plus or n_envs):
            raise UserError(f"{text!r}: {name} runs as it comes, with no ':N' or '+compile'")
        return cls(name, int(n_envs) if n_envs else None, compiled=bool(plus))

    @property
    def label(self) -> str:
        return ("sb3" if self.name == "dummy" else self.name) + (
            "+compile" if self.compiled else ""
        )

    def overrides(self, algo: str) -> list[str]:
        if self.name == "rl_zoo3":  # its own settings; the zoo config only names the game
            return []
        extra = [f"vec_env={'dummy' if self.name == 'stock' else self.name}"]
        if algo in OFF_POLICY:
            extra.append(f"compile={'true' if self.compiled else 'false'}")
        if self.n_envs is not None:
            extra.append(f"n_envs={self.n_envs}")
        stock = ["channels_last=false", "fused_adam=false"]  # SB3's layout and per-tensor Adam
        return extra + (stock if self.name == "stock" else [])


BACKEND_NAMES = ("stock", "ale", "sb3", "dummy", "subproc", "rl_zoo3")


@dataclass
class Measurements:
    label: str
    n_envs: int
    env_rates: list[float] = field(default_factory=list)
    train_rates: list[float] = field(default_factory=list)


def config_for(algo: str, env: str, backend: Backend, args: argparse.Namespace) -> Config:
    overrides = ["seed=0", *backend.overrides(algo)]
    if algo in OFF_POLICY:
        overrides.append(f"learning_starts={learning_starts(args)}")

    def built(*extra: str) -> Config:
        extras = [*overrides, *args.set, *extra]
        return build_config(algo, env, args.hyperparams_file, extras, preset=args.preset)

    config = built()
    if algo in OFF_POLICY and not any(text.startswith("exploration") for text in args.set):
        config = built(f"exploration={final_epsilon(config)}")
    return config


def learning_starts(args: argparse.Namespace) -> int:
    """Half the warm-up: its second half makes gradient steps, so a compiled update has
    compiled before the timing starts."""
    return args.warmup // 2


def final_epsilon(config: Config) -> float:
    schedule = config.exploration_schedule()
    assert schedule is not None
    return schedule.value(config.n_timesteps)


def env_rate(env: VecEnv, steps: int) -> float:
    """Agent steps per second of the env alone, with uniformly random actions."""
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    calls = max(1, steps // env.num_envs)
    actions = np.random.default_rng(0).integers(n_actions, size=(calls, env.num_envs))
    env.reset()
    for action in actions[: max(1, calls // 10)]:  # warm-up
        env.step(action)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return calls * env.num_envs / (time.perf_counter() - start)


def train_rate(model: BaseAlgorithm, args: argparse.Namespace) -> float:
    """Agent steps per second of training, after `args.warmup` untimed steps."""
    steps, warmup, profile = args.steps, args.warmup, args.profile
    model.learn(total_timesteps=warmup)
    profiler = cProfile.Profile() if profile else None
    start_steps, start = model.num_timesteps, time.perf_counter()
    if profiler is not None:
        profiler.enable()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        print_profile(profiler, profile)
    return (model.num_timesteps - start_steps) / elapsed


def print_profile(profiler: cProfile.Profile, lines: int) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(lines)
    body = out.getvalue()
    print(body[body.find("   ncalls") :].rstrip())


def measure(algo: str, backend: Backend, args: argparse.Namespace, into: Measurements) -> None:
    config = config_for(algo, args.env, backend, args)
    threads = apply_torch_threads(config.run.torch_threads)  # the same for every backend
    settings = config.env_settings()
    if backend.name == "rl_zoo3":
        print(f"# {algo} rl_zoo3: its own env and model, torch threads {threads}", flush=True)
        with rl_zoo3_run(
            algo, config.env.name, config.seed, args.device, rl_zoo3_settings(algo, config, args)
        ) as (model, env):
            into.n_envs = env.num_envs
            if args.env_steps > 0:
                into.env_rates.append(env_rate(env, args.env_steps))
            if args.steps > 0:
                into.train_rates.append(train_rate(model, args))
        return
    print(f"# {algo} {into.label}: n_envs {settings.n_envs}, torch threads {threads}", flush=True)
    if args.env_steps > 0:
        env = make_vec_env_for(config.env, settings, config.seed)
        try:
            into.env_rates.append(env_rate(env, args.env_steps))
        finally:
            env.close()
    if args.steps > 0:
        env = make_vec_env_for(config.env, settings, config.seed)
        try:
            into.train_rates.append(train_rate(build_model(config, env, args.device), args))
        finally:
            env.close()


def rl_zoo3_settings(algo: str, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """What changes in rl_zoo3's section, as for zoo's backends: the warm-up, the final
    epsilon from the start, and every --set of a key that section has."""
    allowed = section_keys(algo)
    settings: dict[str, Any] = {}
    for text in args.set:
        key, _, value = text.partition("=")
        if key in allowed:
            settings[key] = yaml.safe_load(value)
    if algo in OFF_POLICY:
        epsilon = final_epsilon(config)
        settings.update(
            learning_starts=learning_starts(args),
            exploration_initial_eps=epsilon,
            exploration_final_eps=epsilon,
        )
    return settings


def summary(rates: list[float]) -> str:
    if not rates:
        return "-"
    if len(rates) == 1:
        return f"{rates[0]:,.0f}"
    return f"{np.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def ratio(rates: list[float], base: list[float]) -> str:
    return f"{np.median(rates) / np.median(base):.2f}x" if rates and base else "-"


def hours_for_10m(rates: list[float]) -> str:
    """The time 10M agent steps take at the median training rate."""
    return f"{10_000_000 / np.median(rates) / 3600:.1f} h" if rates else "-"


def machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            names = [
                line.split(":", 1)[1].strip() for line in file if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = f"; GPU {th.cuda.get_device_name(0)}" if device == "cuda" else "; no GPU used"
    return (
        f"{cpu}, {cores()} cores{gpu}; torch {th.__version__}, "
        f"SB3 {stable_baselines3.__version__}, ale-py {ale_py.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", nargs="+", default=["a2c", "dqn"], choices=list(SCHEMAS))
    parser.add_argument("--env", default="Breakout")
    parser.add_argument(
        "--backends", nargs="+", default=["stock", "sb3", "ale"], metavar="NAME[:N_ENVS]"
    )
    parser.add_argument("--steps", type=int, default=20_000, help="timed training agent steps")
    parser.add_argument("--env-steps", type=int, default=20_000, help="timed env-only agent steps")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed training steps first")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the backends")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--preset", help="a preset of hyperparams/presets.yml for every backend")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="top N of cProfile")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="cpu",
        help="where the networks train (default: cpu)",
    )
    args = parser.parse_args()
    args.device = resolve_device(args.device)  # one clear line where no GPU is visible
    backends = [Backend.parse(text) for text in args.backends]
    args.hyperparams_file = None
    if any(backend.name == "rl_zoo3" for backend in backends):
        if len(args.algo) != 1:
            raise UserError("with the rl_zoo3 backend give one --algo: its file is per algorithm")
        args.hyperparams_file = hyperparams_file(args.algo[0])
        print(f"every backend trains rl_zoo3's settings: {args.hyperparams_file}")
    print(f"machine: {machine(args.device)}")
    print(f"env: {args.env}, timed agent steps: env {args.env_steps:,}, training {args.steps:,}")
    rows = []
    for algo in args.algo:
        results = [
            Measurements(
                backend.label, config_for(algo, args.env, backend, args).env_settings().n_envs
            )
            for backend in backends
        ]
        for _ in range(args.repeat):
            for backend, into in zip(backends, results, strict=True):
                measure(algo, backend, args, into)
        base = results[0]
        for result in results:
            rows.append(
                f"| {algo} | {result.label} | {result.n_envs} | {summary(result.env_rates)} | "
                f"{ratio(result.env_rates, base.env_rates)} | {summary(result.train_rates)} | "
                f"{ratio(result.train_rates, base.train_rates)} | "
                f"{hours_for_10m(result.train_rates)} |"
            )
    print(
        "| algo | backend | n_envs | env steps/s | env ratio | training steps/s | training ratio "
        "| 10M steps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        print(f"throughput.py: error: {error}", file=sys.stderr)
        sys.exit(2)
