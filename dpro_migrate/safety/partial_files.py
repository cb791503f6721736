"""Files written under a temporary name (a backup being copied, a pg_dump being written): created 0600 and
locked (flock) for as long as they are written, so that the next run can tell a file a killed dpro-migrate
left behind (a copy of production data nobody will ever finish) from one another process is writing now.

flock, not fcntl: SQLite holds POSIX (fcntl) locks on the backup it writes, and the two kinds are apart on
Linux; closing this descriptor never drops SQLite's locks, nor the other way round."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

# what dpro-migrate writes under a temporary name in a backup folder, and what SQLite writes beside it
PATTERNS = ("*.bak.tmp", "pg-*.dump.tmp")
COMPANIONS = ("-journal", "-wal", "-shm")


def create_locked(path: Path) -> int:
    """A new file at `path`, mode 0600, locked: its descriptor, to be closed (which unlocks it) once the file is
    renamed to its final name or removed. Raises FileExistsError when `path` exists."""
    for _ in range(3):
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # another run's sweep took it for a left-over between open and flock: make it again
    raise FileExistsError(path)


def remove_left_overs(directory: Path, patterns: tuple[str, ...] = PATTERNS) -> list[Path]:
    """The partial files a killed dpro-migrate left in `directory` (nobody holds them locked any more),
    removed with what SQLite wrote beside them; the paths removed."""
    removed = []
    try:
        candidates = sorted({p for pattern in patterns for p in Path(directory).glob(pattern)})
    except OSError:
        return removed
    for tmp in candidates:
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # another dpro-migrate is writing it
        try:
            if not os.path.samestat(os.fstat(fd), os.stat(tmp, follow_symlinks=False)):
                continue  # renamed or replaced meanwhile: not the file that was unlocked
            tmp.unlink()
            removed.append(tmp)
            for companion in COMPANIONS:
                tmp.with_name(tmp.name + companion).unlink(missing_ok=True)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
