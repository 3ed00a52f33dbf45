"""docker/pins.toml: every URL an image downloads, with its sha256.

The file is a small subset of TOML that Python 3.8's standard library can read (``tomllib``
came in 3.11) and that ``docker/fetch-pinned`` reads without any library::

    [[pin]]
    url = "https://..."
    sha256 = ""        # "" = not recorded yet: builds that need it fail until it is

``record_pin`` downloads a URL and writes its sha256 into the file, leaving every other line
(comments included) as it was. ``eikit pin URL`` is the command behind it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Dict, List, Mapping, Optional, Sequence, Union

logger = logging.getLogger(__name__)

DEFAULT_PINS = Path("docker/pins.toml")
DEFAULT_TIMEOUT = 120.0
CHUNK = 1 << 20
PROGRESS_EVERY_S = 1.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

_TABLE = re.compile(r"^\[\[\s*pin\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r'^([A-Za-z0-9_-]+)\s*=\s*"([^"\\]*)"\s*(#.*)?$')
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

PathLike = Union[str, "os.PathLike[str]"]


class PinError(Exception):
    """A pin is missing, unrecorded, malformed, or does not match."""


class PinsFormatError(PinError):
    """The pins file does not follow the format."""


class UnknownPinError(PinError):
    """The URL is not in the pins file."""


class UnrecordedPinError(PinError):
    """The URL is listed but its sha256 has not been recorded yet."""


class PinMismatchError(PinError):
    """A file's sha256 differs from the pinned one."""


@dataclass(frozen=True)
class Pin:
    url: str
    sha256: str  # "" while not recorded
    line: int  # line of the [[pin]] header, 1-based

    @property
    def recorded(self) -> bool:
        return bool(self.sha256)


def check_url(url: str) -> None:
    """Only https is pinned; plain http only from a loopback host (tests, a local mirror)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise PinError("only https URLs can be pinned (plain http only from loopback): %r" % url)


def parse_pins(text: str, source: str = "pins.toml") -> List[Pin]:
    """The pins in ``text``, in file order; raises ``PinsFormatError`` naming file and line."""
    pins: List[Pin] = []
    seen: Dict[str, int] = {}
    entry: Optional[Dict[str, str]] = None
    header = 0

    def close() -> None:
        if entry is None:
            return
        where = "%s:%d" % (source, header)
        if "url" not in entry or "sha256" not in entry:
            raise PinsFormatError("%s: a [[pin]] needs both url and sha256" % where)
        url, digest = entry["url"], entry["sha256"]
        try:
            check_url(url)
        except PinError as exc:
            raise PinsFormatError("%s: %s" % (where, exc)) from None
        if digest and not _SHA256.match(digest):
            raise PinsFormatError('%s: sha256 must be 64 lowercase hex digits or ""' % where)
        if url in seen:
            raise PinsFormatError("%s: %s is already pinned at line %d" % (where, url, seen[url]))
        seen[url] = header
        pins.append(Pin(url, digest, header))

    lines = text.splitlines()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _TABLE.match(line):
            close()
            entry, header = {}, lineno
            continue
        match = _KEY.match(line)
        if entry is None or match is None or match.group(1) not in ("url", "sha256"):
            raise PinsFormatError(
                '%s:%d: unsupported line (expected [[pin]], url = "..." or sha256 = "..."): %s'
                % (source, lineno, line)
            )
        if match.group(1) in entry:
            raise PinsFormatError("%s:%d: %s given twice" % (source, lineno, match.group(1)))
        entry[match.group(1)] = match.group(2)
    close()
    return pins


def load_pins(path: PathLike = DEFAULT_PINS) -> Dict[str, Pin]:
    """{url: Pin} from a pins file."""
    text = Path(path).read_text(encoding="utf-8")
    return {pin.url: pin for pin in parse_pins(text, str(path))}


def pinned_sha256(url: str, pins: Mapping[str, Pin]) -> str:
    """The recorded sha256 of ``url``; raises if it is not pinned or not recorded."""
    pin = pins.get(url)
    if pin is None:
        raise UnknownPinError(
            "%s is not pinned; record it with `eikit pin %s` and commit the pins file" % (url, url)
        )
    if not pin.recorded:
        raise UnrecordedPinError(
            "no sha256 recorded for %s; on a machine that reaches it run `eikit pin %s`"
            % (url, url)
        )
    return pin.sha256


def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: PathLike, url: str, pins: Mapping[str, Pin]) -> str:
    """Check that the file at ``path`` is the one pinned for ``url``; returns its sha256."""
    expected = pinned_sha256(url, pins)
    actual = sha256_file(path)
    if actual != expected:
        raise PinMismatchError(
            "sha256 mismatch for %s (%s): pinned %s, file has %s" % (url, path, expected, actual)
        )
    return actual


def download_sha256(
    url: str, timeout: float = DEFAULT_TIMEOUT, progress: Optional[IO[str]] = None
) -> str:
    """Stream ``url`` through sha256 without keeping it; progress lines go to ``progress``
    (default stderr) about once a second, so short downloads print nothing."""
    check_url(url)
    stream = sys.stderr if progress is None else progress
    digest = hashlib.sha256()
    size = 0
    started = last = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        for chunk in iter(lambda: response.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                of = " of %.1f MiB" % (total / 2**20) if total else ""
                stream.write("eikit pin: %s: %.1f MiB%s\n" % (url, size / 2**20, of))
                stream.flush()
    if total and size != total:
        raise PinError("download of %s ended after %d of %d bytes" % (url, size, total))
    logger.info("downloaded %s: %d bytes in %.1f s", url, size, time.monotonic() - started)
    return digest.hexdigest()


def set_pin_text(text: str, url: str, sha256: str) -> str:
    """``text`` with the sha256 of ``url`` set (a new [[pin]] appended when it has none);
    every other line is kept as it was."""
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256: %r" % sha256)
    pins = {pin.url: pin for pin in parse_pins(text)}
    lines = text.splitlines(keepends=True)
    pin = pins.get(url)
    if pin is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        block = '[[pin]]\nurl = "%s"\nsha256 = "%s"\n' % (url, sha256)
        return "".join(lines) + ("\n" if lines else "") + block
    # The pin's own lines run from its header to the next header (or the end).
    end = len(lines)
    for index in range(pin.line, len(lines)):
        if _TABLE.match(lines[index].strip()):
            end = index
            break
    for index in range(pin.line, end):
        match = _KEY.match(lines[index].strip())
        if match and match.group(1) == "sha256":
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            newline = "\n" if lines[index].endswith("\n") else ""
            comment = " " + match.group(3) if match.group(3) else ""
            lines[index] = '%ssha256 = "%s"%s%s' % (indent, sha256, comment, newline)
            return "".join(lines)
    raise PinsFormatError("the pin for %s has no sha256 line" % url)  # parse_pins forbids it


def record_pin(
    url: str,
    pins_path: PathLike = DEFAULT_PINS,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    progress: Optional[IO[str]] = None,
) -> str:
    """Download ``url``, write its sha256 into ``pins_path`` and return it.

    A pin recorded with another sha256 is left alone (``PinMismatchError``) unless ``force``:
    a file that changes under a fixed URL is news, not something to accept quietly.
    """
    check_url(url)
    path = Path(pins_path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    known = {pin.url: pin for pin in parse_pins(text, str(path))}
    digest = download_sha256(url, timeout=timeout, progress=progress)
    old = known.get(url)
    if old is not None and old.recorded and old.sha256 != digest and not force:
        raise PinMismatchError(
            "%s now has sha256 %s, but %s pins %s; check why it changed, then run "
            "`eikit pin --force %s`" % (url, digest, path, old.sha256, url)
        )
    if old is not None and old.sha256 == digest:
        logger.info("pin for %s already recorded: %s", url, digest)
        return digest
    _write_atomically(path, set_pin_text(text, url, digest))
    logger.info("recorded %s in %s: %s", url, path, digest)
    return digest


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent) or ".", prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- the command: eikit pin ----------------------------------------------------------------


def add_pin_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pin`` on an argparse subparsers object; it sets ``func=run_pin_command``."""
    parser = subparsers.add_parser(
        "pin",
        help="record the sha256 of a download in docker/pins.toml",
        description="Download each URL and record its sha256 in the pins file that image "
        "builds check (docker/fetch-pinned). Needs a machine that reaches the URL.",
    )
    configure_pin_parser(parser)


def configure_pin_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="URL to download and pin")
    parser.add_argument(
        "--pins", type=Path, default=DEFAULT_PINS, help="pins file (default: %(default)s)"
    )
    parser.add_argument(
        "--unrecorded", action="store_true", help="also pin every URL whose sha256 is empty"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a recorded sha256 that has changed"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per network read"
    )
    parser.set_defaults(func=run_pin_command)


def run_pin_command(args: argparse.Namespace) -> int:
    """Pin ``args.urls`` (and, with ``--unrecorded``, every empty pin); print ``sha256  url``."""
    urls: List[str] = list(args.urls)
    if args.unrecorded:
        try:
            pins = load_pins(args.pins)
        except (OSError, PinError) as exc:
            print("eikit pin: %s" % exc, file=sys.stderr)
            return 2
        urls += [url for url, pin in pins.items() if not pin.recorded and url not in urls]
    if not urls:
        print("eikit pin: nothing to pin (give URLs, or --unrecorded)", file=sys.stderr)
        return 2
    failed = 0
    for url in urls:
        try:
            digest = record_pin(url, args.pins, timeout=args.timeout, force=args.force)
        except (PinError, OSError, ValueError) as exc:
            print("eikit pin: %s: %s" % (url, exc), file=sys.stderr)
            failed += 1
            continue
        print("%s  %s" % (digest, url))
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m eikit.images.pins URL...``: the same as ``eikit pin``."""
    parser = argparse.ArgumentParser(prog="eikit pin", description=__doc__.splitlines()[0])
    configure_pin_parser(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
