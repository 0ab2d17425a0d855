"""zoo: train, tune and watch Atari agents built on Stable-Baselines3."""

from zoo.core.former_paths import install_former_paths

__version__ = "0.1.0"

# Zips saved before the modules moved into packages name the old module paths.
install_former_paths()
