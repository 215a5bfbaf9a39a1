"""The one error type a user can cause: the CLI prints its message as one line and exits non-zero."""


class UserError(Exception):
    """Something the user can fix (bad path, missing dataset, unavailable backend).

    The message says what went wrong and how to fix it, in one line; no traceback is shown.
    """

    exit_code = 2
