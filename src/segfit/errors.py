"""User-facing errors: one line that says what went wrong, where, and how to fix it."""

from __future__ import annotations

import os


class SegfitError(Exception):
    """An error caused by the user's input, shown as ``<what> (<file>): <fix>`` without a traceback."""

    def __init__(self, what: str, file: str | os.PathLike | None = None, fix: str | None = None):
        self.what, self.file, self.fix = what, None if file is None else str(file), fix
        super().__init__(self.line())

    def line(self) -> str:
        text = self.what
        if self.file:
            text += f" ({self.file})"
        if self.fix:
            text += f": {self.fix}"
        return text


def require(path: str | os.PathLike, what: str) -> None:
    """Raise ``<what> not found (<path>): check the path`` when ``path`` does not exist (the one wording of it)."""
    if not os.path.exists(path):
        raise SegfitError(f"{what} not found", path, "check the path")


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; the message says how to resume; ``code`` is the exit status
    (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code


def from_os_error(exc: BaseException) -> SegfitError | None:
    """The user's error that an ``OSError`` of the file system is (a folder without write permission, a
    read-only or full disk), or ``None`` for another exception: reported as a one-line message, not as an
    internal error."""
    import errno

    if not isinstance(exc, OSError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                                          errno.EDQUOT):
        return None
    what = (exc.strerror or "cannot write").lower()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SegfitError(what, exc.filename, "free some space, or write to another disk (--out)")
    return SegfitError(what, exc.filename, "check the permissions of that place, or write elsewhere (--out)")
