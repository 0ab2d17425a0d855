"""`zoo envs`: the Atari games zoo knows by short name."""

from __future__ import annotations

import argparse

from zoo.commands.common import Parser, Subparsers


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    return commands.add_parser("envs", help="list the Atari games zoo knows by short name")


def run(args: argparse.Namespace) -> int:
    from zoo.envs.stack import atari_game_names

    names = atari_game_names()
    width = max(map(len, names)) + 2
    per_line = max(1, 100 // width)
    for start in range(0, len(names), per_line):
        print("".join(name.ljust(width) for name in names[start : start + per_line]).rstrip())
    print(
        f"\n{len(names)} games; add -ram for the RAM variant (SpaceInvaders-ram); full gymnasium ids work too."
    )
    return 0
