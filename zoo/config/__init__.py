"""One validated configuration from the layers a user gives (shipped YAML, presets,
files, flags, --set), rl-baselines3-zoo's file format, and the generated key table."""
