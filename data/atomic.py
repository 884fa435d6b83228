"""Writing a file atomically: a reader, or a crash, sees the file's old content or all of the new, never a part."""
import os
import tempfile


def write_atomically(path, write, prefix=".tmp-"):
    """Call write(stream) on a temporary file beside `path`, then move it over `path`.

    Why each step: the temporary file sits in the same directory because os.replace is atomic only within one file
    system; it is flushed and fsynced before the rename, so a crash cannot leave a renamed but empty file; it gets
    the permissions of the file it replaces, or those a plain open() would give (mkstemp makes files private); on
    any failure it is removed and the old file is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    handle, temporary = tempfile.mkstemp(prefix=prefix, dir=directory)
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
