"""RULER-style tasks: multi-key needles, variable tracking, common words."""

from . import cwe, niah, vt  # noqa: F401  (importing registers the tasks)
