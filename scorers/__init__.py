"""Answer extraction, per-task metrics, statistics and submission checks."""
