"""One exception type for mistakes a user can fix.

The CLI prints a UserError as one line (``miniseries: error: ...``) and exits with code 2, never a
traceback. Raise it with a message that names the bad value, the valid range, and what to do.
"""


class UserError(Exception):
    """Bad input or a missing prerequisite: the message tells the user what to change."""
