"""The errors exprl raises on purpose, as a small hierarchy a caller can act on.

Every error a user can cause (bad input, bad config, a server that does not answer, an output
path that would destroy data) is an `ExprlError`: the CLI prints its one-line message and exits
with its `exit_code` (2) instead of showing a traceback. Anything else is a bug in exprl and keeps
its traceback.
"""
from __future__ import annotations


class ExprlError(Exception):
    """Base class of every error exprl raises on purpose."""

    exit_code = 2


class ConfigError(ExprlError):
    """A recipe or command-line override is invalid (unknown key, wrong type, bad value)."""


class DataError(ExprlError):
    """A data row is unusable. Names the file, the 1-based line (or row) and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ":".join(str(p) for p in (path, line) if p is not None)
        parts = [where] if where else []
        if field is not None:
            parts.append(f"field '{field}'")
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)


class JudgeError(ExprlError):
    """The judge cannot be used at all (misconfigured backend, server never came up).

    A single failed judgment is never raised: it becomes a `JudgeResult` with a failure status.
    """


class ServerError(JudgeError):
    """A judge server could not be started or does not answer."""


class RunStateError(ExprlError):
    """A run directory cannot be resumed (missing, corrupt, or written by another version)."""


class OutputError(ExprlError):
    """An output path exprl refuses or fails to write: it equals or contains an input, it holds files
    exprl did not write (without --overwrite), it is not a regular file or folder, or the operating
    system refused the write (a full disk, a read-only folder: `from_os_error`)."""

    @classmethod
    def from_os_error(cls, path: object, exc: OSError, doing: str = "write") -> "OutputError":
        return cls(f"cannot {doing} {path}: {os_error_reason(exc)}")


_OS_ERROR_HINTS = {
    "ENOSPC": "the disk is full; free space or write elsewhere",
    "EDQUOT": "the disk quota is used up; free space or write elsewhere",
    "EFBIG": "the file is larger than this file system or process allows; write elsewhere",
    "EACCES": "permission denied; choose a folder you can write to",
    "EPERM": "operation not permitted; choose a folder you can write to",
    "EROFS": "the file system is read-only; choose another folder",
    "ENOTDIR": "a part of the path is a file, not a folder",
    "EISDIR": "it is a folder, not a file",
    "ENAMETOOLONG": "the name is too long",
    "ENOENT": "a folder on the path does not exist",
    "ELOOP": "too many symbolic links on the path",
}


def os_error_reason(exc: OSError) -> str:
    """What the operating system said, in words a user acts on."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    return _OS_ERROR_HINTS.get(name, exc.strerror or str(exc)) + (f" ({name})" if name else "")


class RunStoppedError(ExprlError):
    """A run stopped on purpose before its end, with a checkpoint to resume from (the judge stopped
    answering): exit 1, a run with failures to retry, not a user error."""

    exit_code = 1
