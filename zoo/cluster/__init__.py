"""Slurm: `zoo benchmark --slurm` and `zoo tune --slurm N`, through submitit.

slurm: what this machine's Slurm is and says (commands on the PATH, partitions, job states,
requeue); jobs: the options of a submission and submitit's executor; requeue: what a task does
when it is stopped or fails (checkpoint, requeue, give up after N) and its claim on a cell;
benchmark_jobs and tune_jobs: the tasks of the two commands and their submission.
"""
