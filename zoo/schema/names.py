"""The names a user may write in YAML or give on the command line, without what they stand for.

This module imports nothing: the schema checks YAML against these names and `zoo --help`
offers them without loading PyTorch. `registry.py` maps each name to its class or function,
and a test checks that both list the same names in the same order.
"""

from __future__ import annotations

POLICIES: tuple[str, ...] = ("CnnPolicy", "MlpPolicy")
# ppo_lstm's policies (sb3-contrib's RecurrentPPO): the same networks with an LSTM after them.
RECURRENT_POLICIES: tuple[str, ...] = ("CnnLstmPolicy", "MlpLstmPolicy")
OPTIMIZERS: tuple[str, ...] = (
    "adam",
    "adamw",
    "rmsprop",
    "rmsprop_tf_like",
    "rmsprop_deepmind",
    "sgd",
)
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "elu", "leaky_relu", "gelu")
FEATURES_EXTRACTORS: tuple[str, ...] = ("nature_cnn", "flatten", "scaled_flatten")
# Q-networks by name (`network:` in YAML) and the TD losses DQN may minimise.
Q_NETWORKS: tuple[str, ...] = ("nature", "dqn2013")
LOSSES: tuple[str, ...] = ("huber", "mse")
# `noisy_eval`: how noisy nets act in evaluation (zoo/algorithms/noisy.py).
NOISY_EVAL_MODES: tuple[str, ...] = ("mean", "sample")
# `zoo tune --trial-objective`: how a trial's seed runs' scores make its objective.
TRIAL_OBJECTIVES: tuple[str, ...] = ("mean", "iqm", "min")
# `replay_buffer`: the class that stores transitions; `frame_store`: where frames are kept.
REPLAY_BUFFERS: tuple[str, ...] = ("frames", "sb3")
FRAME_STORES: tuple[str, ...] = ("host", "device")
# `augmentation`: what the update does to sampled pixel observations (zoo/algorithms/augmentation.py).
AUGMENTATIONS: tuple[str, ...] = ("random_shift", "random_shift_intensity")

# `zoo benchmark --suite`: the published protocols zoo runs (zoo/results/atari100k.py).
BENCHMARK_SUITES: tuple[str, ...] = ("atari100k",)

# `zoo plot`: the x axes, and the extra panels: name -> (axis label, TensorBoard tags tried
# in order; all found are drawn).
PLOT_X_AXES: tuple[str, ...] = ("steps", "episodes")
PLOT_PANELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "loss": ("loss", ("train/loss", "train/value_loss", "train/policy_loss")),
    "epsilon": ("epsilon", ("rollout/exploration_rate",)),
    "lr": ("learning rate", ("train/learning_rate",)),
    "clip": ("clip range", ("train/clip_range",)),  # PPO
    # SB3 logs minus the mean entropy of the policy's action distribution (A2C, PPO)
    "entropy": ("entropy loss (-entropy)", ("train/entropy_loss",)),
    "explained": ("explained variance", ("train/explained_variance",)),
}
