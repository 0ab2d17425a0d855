"""zoo: train, tune and watch Atari agents built on Stable-Baselines3."""

__version__ = "0.1.0"
