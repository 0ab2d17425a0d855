"""zoo's SB3 algorithms and what they are built from: the TD update, Q-networks,
optimizers, augmentation, the name-to-class registry and the loader of saved zips."""
