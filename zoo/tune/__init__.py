"""`zoo tune`: Optuna studies of short `zoo train` runs.

study: the settings, the workers and one trial; trial_runs: a trial of several seeds
(--seeds-per-trial), its runs in lockstep; search_space: what a trial draws;
sampler: one random stream per trial; storage: where a study lives and how workers share
it; report: trials.csv, plots and best.yml.
"""

from zoo.tune.report import open_report_study, write_report
from zoo.tune.search_space import SearchSpace, load_search_space
from zoo.tune.storage import StudyStorage, journal_path, open_storage
from zoo.tune.study import (
    TrialReporter,
    TuneSettings,
    make_sampler,
    prepare_study,
    run_trial,
    run_workers,
    trial_config,
)

__all__ = [
    "SearchSpace",
    "StudyStorage",
    "TrialReporter",
    "TuneSettings",
    "journal_path",
    "load_search_space",
    "make_sampler",
    "open_report_study",
    "open_storage",
    "prepare_study",
    "run_trial",
    "run_workers",
    "trial_config",
    "write_report",
]
