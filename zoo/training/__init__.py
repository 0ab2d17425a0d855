"""Training one run: from a Config to model.learn, with its callbacks, replay-memory
admission and resume."""
