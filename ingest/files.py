"""Which files of a folder are indexed, and reading them without trusting the folder.

The folder may have been filled by someone else, and whatever is indexed can be read back by
anyone who reaches the API, so nothing outside the folder may reach the index:

- a symbolic link is followed only when it points to a regular file inside the folder (and not
  to a hidden one); links that leave the folder, dangle or loop are skipped with the reason;
- links to folders are never followed, even inside: that makes loops impossible by
  construction, and a folder inside is indexed under its own path anyway;
- FIFOs, sockets and devices are skipped (opening a FIFO would block the run forever);
- a file is opened without following a link (in case one was swapped in since the scan), its
  size is checked on the open descriptor before reading, and it is read only up to the limit.

A ``.ragignore`` at the top of the folder names what else to leave out, one glob per line, as in
a ``.gitignore`` without negation: a pattern with a ``/`` inside matches the path from the
folder (``/README.md``: only the top one), one without matches a name at any depth
(``drafts``, ``*.tmp``); a trailing ``/`` matches folders only. The shipped ``corpus/`` has one,
so its README (which describes the corpus) is not a document; a folder without one is indexed
whole.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ingest.load import is_supported
from rag_service.errors import DocumentUnreadable

OUTSIDE = "symbolic link to a target outside the folder"
BROKEN = "broken symbolic link"
LOOP = "symbolic link loop"
FOLDER_LINK = "symbolic link to a folder (not followed)"
HIDDEN_TARGET = "symbolic link to a hidden file"
SPECIAL = "not a regular file"
IGNORE_FILE = ".ragignore"
_IGNORE_FILE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceFile:
    source: str  # path relative to the folder, with /: the document's name in the index
    path: Path  # what to open: the file itself, or a link's real target inside the folder


@dataclass(frozen=True)
class SkippedPath:
    path: str
    reason: str


@dataclass(frozen=True)
class Listing:
    files: list[SourceFile]
    skipped: list[SkippedPath]


def list_sources(root: Path) -> Listing:
    """The supported, non-hidden files under ``root`` in path order, and what was skipped."""
    root = root.resolve()
    files: list[SourceFile] = []
    skipped: list[SkippedPath] = []
    ignore = _ignore_rules(root, skipped)
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(SkippedPath(_rel(root, folder), f"cannot list: {exc.strerror}"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            source = _rel(root, path)
            if ignore.matches(source, entry.is_dir(follow_symlinks=False)):
                continue
            if entry.is_symlink():
                target, reason = _link_target(root, path)
                if reason is None and target is not None and is_supported(entry.name):
                    files.append(SourceFile(source, target))
                elif reason is not None:
                    skipped.append(SkippedPath(source, reason))
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
            elif is_supported(entry.name):
                if entry.is_file(follow_symlinks=False):
                    files.append(SourceFile(source, path))
                else:
                    skipped.append(SkippedPath(source, SPECIAL))
        pending.extend(reversed(subfolders))
    files.sort(key=lambda f: f.source)
    skipped.sort(key=lambda s: s.path)
    return Listing(files, skipped)


@dataclass(frozen=True)
class IgnoreRules:
    """The patterns of a folder's ``.ragignore`` (see the module docstring)."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        lines = (line.strip() for line in text.splitlines())
        return cls(tuple(line for line in lines if line and not line.startswith("#")))

    def matches(self, source: str, is_dir: bool) -> bool:
        name = source.rsplit("/", 1)[-1]
        for pattern in self.patterns:
            if pattern.endswith("/"):
                if not is_dir:
                    continue
                pattern = pattern.rstrip("/")
            if "/" in pattern:
                if fnmatchcase(source, pattern.lstrip("/")):
                    return True
            elif fnmatchcase(name, pattern):
                return True
        return False


def _ignore_rules(root: Path, skipped: list[SkippedPath]) -> IgnoreRules:
    """The folder's ``.ragignore``, read as untrusted as any file in it (no link, no FIFO, at
    most 64 KiB); an unreadable one is reported and ignores nothing."""
    path = root / IGNORE_FILE
    if not path.exists() and not path.is_symlink():
        return IgnoreRules()
    try:
        data = read_source(SourceFile(IGNORE_FILE, path), _IGNORE_FILE_MAX_BYTES)
    except OSError as exc:
        skipped.append(SkippedPath(IGNORE_FILE, f"cannot read: {exc.strerror or exc}"))
        return IgnoreRules()
    except DocumentUnreadable as exc:
        skipped.append(SkippedPath(IGNORE_FILE, exc.reason))
        return IgnoreRules()
    return IgnoreRules.parse(data.decode("utf-8", errors="replace"))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() or "."


def _link_target(root: Path, link: Path) -> tuple[Path | None, str | None]:
    """A link's real target if it may be followed, else why not."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except OSError as exc:
        return None, LOOP if exc.errno == errno.ELOOP else BROKEN
    if not target.is_relative_to(root):
        return None, OUTSIDE
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        return None, HIDDEN_TARGET
    try:
        mode = target.stat().st_mode
    except OSError:
        return None, BROKEN
    if stat.S_ISDIR(mode):
        return None, FOLDER_LINK
    if not stat.S_ISREG(mode):
        return None, SPECIAL
    return target, None


def read_source(source: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; ``DocumentUnreadable`` if it is no longer a regular file or is larger
    than ``max_bytes`` (decided on the open descriptor, before reading anything)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    with open(os.open(source.path, flags), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DocumentUnreadable(source.source, SPECIAL)
        if info.st_size > max_bytes:
            raise DocumentUnreadable(source.source, _too_large(info.st_size, max_bytes))
        data = handle.read(max_bytes + 1)  # it may have grown since fstat
    if len(data) > max_bytes:
        raise DocumentUnreadable(source.source, _too_large(len(data), max_bytes))
    return data


def _too_large(size: int, max_bytes: int) -> str:
    return f"file too large ({size} bytes; the limit is {max_bytes}, RAG_INGEST__MAX_FILE_BYTES)"
