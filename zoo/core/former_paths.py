"""The module paths classes had before zoo's modules moved into packages.

SB3 saves a model's policy, replay buffer, schedules and policy_kwargs classes by module path,
so zips saved earlier name `zoo.q_networks.DuelingQNetworkPolicy` and the like. Importing any
former path gives the module that now holds those classes, for SB3's loader and for zoo's.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

# Former path -> the module that holds its classes now. Only modules whose classes a saved
# zip can name: policies and networks, optimizers, extractors, buffers, schedules.
FORMER_PATHS: dict[str, str] = {
    "zoo.algos": "zoo.algorithms.algos",
    "zoo.q_networks": "zoo.algorithms.q_networks",
    "zoo.optimizers": "zoo.algorithms.optimizers",
    "zoo.ram_extractor": "zoo.algorithms.ram_extractor",
    "zoo.networks": "zoo.algorithms.ram_extractor",
    "zoo.frame_buffer": "zoo.replay.frame_buffer",
    "zoo.prioritized": "zoo.replay.prioritized",
    "zoo.schedules": "zoo.schema.schedules",
}


def current_module_path(module: str) -> str:
    """The module path that holds what `module` held when a zip was saved."""
    return FORMER_PATHS.get(module, module)


class _FormerPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of a former path with the module that replaced it (one object under
    both names, so classes compare equal whichever name a pickle used)."""

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in FORMER_PATHS:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(FORMER_PATHS[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed under its current path."""


def install_former_paths() -> None:
    """Make the former paths importable (once per process)."""
    if not any(isinstance(finder, _FormerPathFinder) for finder in sys.meta_path):
        # First, so that a stale file left at a former path by an older install is not found.
        sys.meta_path.insert(0, _FormerPathFinder())
