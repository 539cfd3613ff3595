"""Bounds on what spanex reads from outside: files (run records, configs) and command-line values.

A file is read only if it is a regular file no larger than the caller's limit; the size is checked on
the open descriptor before anything is read, and the read itself stops one byte past the limit, so a
record symlinked to ``/dev/zero``, a FIFO or a file that grows while it is read cannot make spanex
read without end. Parsed values (JSON, TOML) are checked for nesting depth with an explicit stack,
never by recursion, so a crafted ``[[[[...]]]]`` gives a clear error instead of a RecursionError.
"""

from __future__ import annotations

import datetime
import os
import stat

#: values read from records, configs and ``--set`` may nest at most this deep. Real records nest 3
#: levels (record -> trace -> row) and configs 2 (a list of lists); 32 leaves room for user points.
MAX_DEPTH = 32

#: plain data: what JSON and TOML values may hold once parsed (TOML dates and times are refused)
_SCALARS = (str, int, float, bool, type(None))


class LimitError(ValueError):
    """A file or value is out of the bounds spanex reads (too large, not a regular file, too deep).

    ``what`` names the file or value, ``reason`` says what is wrong; the message is both.
    """

    def __init__(self, what: str, reason: str):
        self.what, self.reason = what, reason
        super().__init__(_join(what, reason))


def _join(what: str, reason: str) -> str:
    return f"{what} {reason}" if what else reason


def read_bounded(path, max_bytes: int, what: str = "") -> bytes:
    """The bytes of the regular file `path`, refusing (LimitError) anything else or anything larger
    than `max_bytes`. Symlinks are followed; their target must be a regular file within the limit.
    `what` names the file in the message (e.g. ``"--config 'c.toml'"``). OSError as ``os.open`` raises it.

    The file is opened non-blocking (a FIFO does not hang the open) and checked with ``fstat`` on the
    open descriptor, so the checked file is the one read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LimitError(what, f"is not a regular file ({_kind(st.st_mode)})")
        if st.st_size > max_bytes:
            raise LimitError(what, f"has {st.st_size} bytes, more than the limit of {max_bytes}")
        chunks, n = [], 0
        while n <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - n))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
        if n > max_bytes:  # the file grew after fstat
            raise LimitError(what, f"has more than the limit of {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_plain(value, what: str = "", max_depth: int = MAX_DEPTH):
    """Check that `value` is plain data (str, int, float, bool, None, lists and str-keyed dicts of them;
    TypeError otherwise) nested at most `max_depth` levels deep (LimitError otherwise); return it
    unchanged. Iterative: safe on any depth."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, _SCALARS):
            continue
        if isinstance(v, (list, tuple)):
            children = v
        elif isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(_join(what, "has a table key that is not a string"))
            children = v.values()
        elif isinstance(v, (datetime.date, datetime.time)):
            raise TypeError(_join(what, f"holds a date or time ({v}); give a number, string, boolean or list"))
        else:
            raise TypeError(_join(what, f"holds a value of type {type(v).__name__}, not plain data"))
        if depth + 1 > max_depth:
            raise LimitError(what, f"is nested more than {max_depth} levels deep")
        stack.extend((c, depth + 1) for c in children if not isinstance(c, _SCALARS))  # only containers wait
    return value
