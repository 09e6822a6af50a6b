"""QA tasks: one question about one document hidden among many (SQuAD, QuALITY, TOEFL)."""

from . import tasks  # noqa: F401  (importing registers the tasks)
