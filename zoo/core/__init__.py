"""What every part uses: one-line user errors, text and YAML files, atomic writes, stop
signals and thread settings. Imports nothing else of zoo."""
