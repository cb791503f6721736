"""One error hierarchy for everything a user can be told; the CLI turns it into a line and an exit code."""

OK = 0
CHECKS_FAILED = 1  # verification failed, or rows the target refuses
BAD_INPUT = 2  # missing/corrupt file, wrong database, unusable plan, bad flags
OUTCOME_UNKNOWN = 3  # the connection failed during a commit: whether it landed is not known
LOCKED = 4  # another connection or another dpro-migrate holds the file or database: nothing was changed
DECLINED = 5  # the user answered no to the confirmation: nothing was changed
UNEXPECTED = 70  # a bug or an unforeseen failure: not one of the errors above (EX_SOFTWARE in sysexits.h)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): an unfinished transaction is rolled back

# What each exit code means, as every verb's --help and the README list them.
EXIT_CODES = {
    OK: "ok",
    CHECKS_FAILED: "a check failed, or rows the target refuses (nothing was changed)",
    BAD_INPUT: "bad input: a file, URL, plan or option that cannot be used (nothing was changed)",
    OUTCOME_UNKNOWN: "the connection failed during COMMIT: run `status`",
    LOCKED: "locked: another connection or dpro-migrate holds the database (nothing was changed)",
    DECLINED: "you answered no to the confirmation (nothing was changed)",
    UNEXPECTED: "unexpected error: the traceback is in a log file, named on stderr",
    INTERRUPTED: "interrupted (Ctrl-C): the message says the database's state",
}


class DproMigrateError(Exception):
    """Base of every error meant for the user. The message is one line and names the problem."""

    exit_code = BAD_INPUT

    def __init__(self, message: str, *, details: object = None):
        super().__init__(message)
        self.details = details


class BadInput(DproMigrateError):
    """The input cannot be used: nothing was changed."""

    exit_code = BAD_INPUT


class ChecksFailed(DproMigrateError):
    """The work was refused or a check failed: nothing was changed, findings are in details."""

    exit_code = CHECKS_FAILED


class OutcomeUnknown(DproMigrateError):
    """A commit whose outcome cannot be known (the connection failed during it): see `status`."""

    exit_code = OUTCOME_UNKNOWN


class Locked(DproMigrateError):
    """Another connection (the application's reader or writer) held the lock longer than the busy timeout,
    or another dpro-migrate is at work on the same file or database: nothing was changed; try again later."""

    exit_code = LOCKED


class PermissionDenied(DproMigrateError):
    """The database refused dpro-migrate's role a privilege it needs: nothing was changed."""

    exit_code = BAD_INPUT


class Blocked(DproMigrateError):
    """Another session's lock, a timeout or a cancel stopped the work before it committed: nothing was changed."""

    exit_code = BAD_INPUT


class ConnectionLost(DproMigrateError):
    """The connection broke before COMMIT was sent: the server committed nothing."""

    exit_code = BAD_INPUT
