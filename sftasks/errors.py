"""Errors a user can cause. The CLI prints their message on one line and exits 2."""


class Error(Exception):
    """Base class: the message says what went wrong and what to do."""


class InputError(Error):
    """A bad argument, knob or file given by the user."""


class LengthError(InputError):
    """A malformed length, or one too small for a task's knobs."""


class TokenizerError(Error):
    """A tokenizer that cannot be loaded."""


class DataError(Error):
    """Data on disk (or from the Hub) that is missing, malformed or inconsistent."""
