"""Extract a ``model.tar.gz`` safely, on every Python eikit supports.

Every member is checked before anything is written: only regular files, folders and links;
no absolute names, no ``..``; nothing written through a link; every link resolved fully,
through chains of other links in the archive, and refused unless it stays inside. The
archive is then extracted into a temporary folder next to the destination and renamed into
place, so a refused or failed archive leaves nothing behind. Where the interpreter has
``tarfile.data_filter`` (3.12, and patched 3.8+), it is applied as well, as a second line.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from eikit.errors import ConfigurationError

Parts = Tuple[str, ...]
MAX_LINK_HOPS = 40  # Linux's limit on symlinks followed in one lookup


def _refuse(reason: str, member: tarfile.TarInfo) -> ConfigurationError:
    name = member.name if len(member.name) <= 200 else member.name[:200] + "..."
    return ConfigurationError("unsafe archive member %s: %s" % (name, reason))


def _parts(name: str) -> Optional[Parts]:
    """``name`` as path components inside the archive, or None if it leaves it."""
    if name.startswith("/"):
        return None
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    return None if ".." in parts else parts


def _resolve(folder: Parts, target: str, links: Dict[Parts, str]) -> Optional[Parts]:
    """Where a link in ``folder`` pointing at ``target`` ends up, following links in the
    archive the way the kernel would; None if any step leaves the archive's root."""
    if target.startswith("/"):
        return None
    current = list(folder)
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return None
            current.pop()
            continue
        current.append(part)
        link = links.get(tuple(current))
        if link is not None:
            hops += 1
            if hops > MAX_LINK_HOPS or link.startswith("/"):
                return None
            current.pop()
            pending = link.split("/") + pending
    return tuple(current)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "folder"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    return "other"


def check_members(members: List[tarfile.TarInfo]) -> int:
    """Refuse the archive (ConfigurationError) unless every member is safe; returns the
    bytes its files need."""
    final: Dict[Parts, tarfile.TarInfo] = {}
    first_file: Dict[Parts, int] = {}
    total = 0
    for index, member in enumerate(members):
        parts = _parts(member.name)
        kind = _kind(member)
        if parts is None:
            raise _refuse("unsafe path (absolute or with '..')", member)
        if kind == "other":
            raise _refuse("a device, fifo or unknown type, not a file, folder or link", member)
        if not parts and kind != "folder":
            raise _refuse("would replace the destination folder itself", member)
        if member.size < 0:
            raise _refuse("negative size", member)
        earlier = final.get(parts)
        if earlier is not None and (_kind(earlier) != kind or kind not in ("file", "folder")):
            raise _refuse("appears twice, as a link or as two kinds", member)
        final[parts] = member
        if kind == "file":
            total += member.size
            first_file.setdefault(parts, index)
    links = {parts: m.linkname for parts, m in final.items() if m.issym()}
    for index, member in enumerate(members):
        parts = _parts(member.name) or ()
        for depth in range(1, len(parts)):
            above = final.get(parts[:depth])
            if above is not None and not above.isdir():
                raise _refuse("would be written through a %s" % _kind(above), member)
        if member.issym() and _resolve(parts[:-1], member.linkname, links) is None:
            raise _refuse("link points outside the archive (%s)" % member.linkname, member)
        if member.islnk():
            target = _parts(member.linkname)
            if target is None or first_file.get(target, index) >= index:
                raise _refuse(
                    "hard link to something other than an earlier file in the archive", member
                )
    return total


def _first_missing(folder: Path) -> Optional[Path]:
    """The outermost folder of ``folder``'s ancestry (itself included) that does not exist."""
    missing = None
    while not folder.exists() and folder != folder.parent:
        missing = folder
        folder = folder.parent
    return missing


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` (which must not exist yet): every member checked
    first, then all extracted next to it and renamed into place."""
    dest = Path(os.path.abspath(str(dest)))
    if os.path.lexists(str(dest)):
        raise ConfigurationError("cannot extract %s: %s already exists" % (archive, dest))
    try:
        with tarfile.open(str(archive), "r:*") as tar:
            members = tar.getmembers()
            needed = check_members(members)
            existing = _first_missing(dest.parent)
            usage = shutil.disk_usage(str(existing.parent if existing else dest.parent))
            if needed > usage.free:
                raise ConfigurationError(
                    "%s needs %d MB to extract and %d MB are free"
                    % (archive, needed >> 20, usage.free >> 20)
                )
            _extract(tar, members, dest)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ConfigurationError("cannot read %s: %s" % (archive, exc)) from exc
    return dest


def _extract(tar: tarfile.TarFile, members: List[tarfile.TarInfo], dest: Path) -> None:
    created = _first_missing(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=str(dest.parent))
    # The stdlib's own filter, where it exists, as a second line behind check_members.
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        for member in members:
            tar.extract(member, scratch, set_attrs=False, **extra)  # type: ignore[arg-type]
        os.rename(scratch, str(dest))
    except BaseException as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        if created is not None:
            shutil.rmtree(str(created), ignore_errors=True)
        if isinstance(exc, Exception):
            raise ConfigurationError("cannot extract %s: %s" % (dest.name, exc)) from exc
        raise
