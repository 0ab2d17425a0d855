"""The hyperparameter keys: one declaration per key (type, range, help, defaults), the
names a user may write and the schedules a key may take. Imports no PyTorch or SB3."""
