"""The environments: env names, the DeepMind preprocessing stack on SB3's wrappers or on
ale-py's C++ vector env, gymnasium packages and Monitor files."""
