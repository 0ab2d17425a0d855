"""A run's folder and its files: config and status, checkpoints and their manifest,
evaluation logs and the TensorBoard/CSV logger."""
