"""The trial store: one SQLite file per search, written as each trial starts and finishes, so a
crashed search loses nothing and resumes by replaying its stored trials."""

from cherrypick.store.sqlite import (
    FINISHED_STATUSES,
    INSTANCE_STATES,
    SCHEMA_VERSION,
    SEARCH_STATUSES,
    InstanceLike,
    InstanceRow,
    TrialRow,
    TrialStore,
)

__all__ = [
    "FINISHED_STATUSES",
    "INSTANCE_STATES",
    "SCHEMA_VERSION",
    "SEARCH_STATUSES",
    "InstanceLike",
    "InstanceRow",
    "TrialRow",
    "TrialStore",
]
