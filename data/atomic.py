"""Writing a file atomically: a reader, or a crash, sees the file's old content or all of the new, never a part.

What the output path may be: a new path or a regular file (replaced atomically); a symbolic link to a regular file
(its target is replaced atomically and the link stays a link); a character device or a FIFO (/dev/null, a pipe:
written through in place, since they have no old content to keep and must not be replaced by a regular file); not
a directory, a block device, a socket or a dangling link (refused with an OSError naming what it is).
"""
import errno
import os
import stat
import tempfile

_REFUSED = {stat.S_ISDIR: "a directory", stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def write_atomically(path, write, prefix=".tmp-"):
    """Call write(stream) on a temporary file beside `path`, then move it over `path` (or, for a device or a
    FIFO, on the path itself; see the module docstring).

    Why each step: the temporary file sits in the same directory because os.replace is atomic only within one file
    system; it is flushed and fsynced before the rename, so a crash cannot leave a renamed but empty file; it gets
    the permissions of the file it replaces, or those a plain open() would give (mkstemp makes files private); on
    any failure it is removed and the old file is left as it was.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise OSError(errno.ENOENT, "the output is a symbolic link to a missing file", str(path)) from None
        status = None
    if status is not None and (stat.S_ISCHR(status.st_mode) or stat.S_ISFIFO(status.st_mode)):
        return _write_through(path, write)
    if status is not None and not stat.S_ISREG(status.st_mode):
        what = next((name for test, name in _REFUSED.items() if test(status.st_mode)), "not a regular file")
        raise OSError(errno.EEXIST, f"the output is {what}, not a regular file; it is left alone", str(path))
    path = os.path.realpath(path)  # a link's target is replaced, the link kept
    directory = os.path.dirname(path)
    mode = stat.S_IMODE(status.st_mode) if status is not None else _default_mode()
    try:
        handle, temporary = tempfile.mkstemp(prefix=prefix, dir=directory)
    except OSError as error:  # name the output the user gave, not the temporary file's made-up name
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_through(path, write):
    """Write into a device or FIFO in place; a FIFO that no process reads is an error, not a hang."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "the output is a FIFO that no process is reading", str(path)) from None
        raise
    os.set_blocking(handle, True)
    with os.fdopen(handle, "wb") as stream:
        write(stream)
