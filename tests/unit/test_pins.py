"""docker/pins.toml, eikit.images.pins and docker/fetch-pinned, against a real loopback server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.machinery
import importlib.util
import io
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List, Tuple

import pytest

from eikit.images import pins
from eikit.images.pins import (
    PinError,
    PinMismatchError,
    PinsFormatError,
    UnknownPinError,
    UnrecordedPinError,
)

ROOT = Path(__file__).resolve().parents[2]
FETCH_PINNED = ROOT / "docker" / "fetch-pinned"
REPO_PINS = ROOT / "docker" / "pins.toml"
PAYLOAD = b"eikit test payload\n" * 5000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
OTHER_SHA = "0" * 64


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: List[str] = []

    def log_message(self, format: str, *args: object) -> None:
        _QuietHandler.requests.append(self.path)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Tuple[str, Path]]:
    """(base URL, served directory): http.server on 127.0.0.1, a free port."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "artifact.tar.gz").write_bytes(PAYLOAD)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _QuietHandler.requests = []
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1], served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def write_pins(path: Path, entries: Dict[str, str], header: str = "# pins for a test\n") -> Path:
    blocks = ['[[pin]]\nurl = "%s"\nsha256 = "%s"\n' % (url, sha) for url, sha in entries.items()]
    path.write_text(header + "\n" + "\n".join(blocks), encoding="utf-8")
    return path


def run_fetch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FETCH_PINNED), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- record_pin -------------------------------------------------------------------------------


def test_record_pin_writes_the_sha256_and_keeps_every_other_line(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    original = (
        "# a comment that must survive\n"
        "\n"
        "[[pin]]\n"
        'url = "https://example.com/other.whl"\n'
        'sha256 = "%s"   # recorded earlier\n'
        "\n"
        "# the one to record\n"
        "[[pin]]\n"
        'url = "%s"\n'
        'sha256 = ""  # not recorded yet\n' % (OTHER_SHA, url)
    )
    path = tmp_path / "pins.toml"
    path.write_text(original, encoding="utf-8")

    assert pins.record_pin(url, path, timeout=10) == PAYLOAD_SHA

    updated = path.read_text(encoding="utf-8")
    assert updated == original.replace(
        'sha256 = ""  # not recorded yet', 'sha256 = "%s" # not recorded yet' % PAYLOAD_SHA
    )
    loaded = pins.load_pins(path)
    assert loaded[url].sha256 == PAYLOAD_SHA and loaded[url].recorded
    assert loaded["https://example.com/other.whl"].sha256 == OTHER_SHA


def test_record_pin_appends_a_url_the_file_does_not_have(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    path = write_pins(tmp_path / "pins.toml", {"https://example.com/a.whl": ""})
    before = path.read_text(encoding="utf-8")

    pins.record_pin(url, path, timeout=10)

    after = path.read_text(encoding="utf-8")
    assert after.startswith(before)
    assert pins.load_pins(path)[url].sha256 == PAYLOAD_SHA


def test_record_pin_creates_a_missing_pins_file(server: Tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    path = tmp_path / "new.toml"
    pins.record_pin(base + "/artifact.tar.gz", path, timeout=10)
    assert list(pins.load_pins(path).values())[0].sha256 == PAYLOAD_SHA


def test_record_pin_refuses_a_changed_file_unless_forced(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    path = write_pins(tmp_path / "pins.toml", {url: OTHER_SHA})

    with pytest.raises(PinMismatchError, match="--force"):
        pins.record_pin(url, path, timeout=10)
    assert pins.load_pins(path)[url].sha256 == OTHER_SHA

    assert pins.record_pin(url, path, timeout=10, force=True) == PAYLOAD_SHA
    assert pins.load_pins(path)[url].sha256 == PAYLOAD_SHA


def test_record_pin_reports_progress_on_long_downloads(
    server: Tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    monkeypatch.setattr(pins, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(pins, "CHUNK", 4096)
    progress = io.StringIO()
    pins.record_pin(base + "/artifact.tar.gz", tmp_path / "p.toml", timeout=10, progress=progress)
    lines = progress.getvalue().splitlines()
    assert len(lines) > 3
    assert all("MiB" in line and "artifact.tar.gz" in line for line in lines)


def test_record_pin_fails_on_a_missing_file_and_leaves_the_pins_alone(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    path = write_pins(tmp_path / "pins.toml", {base + "/gone.whl": ""})
    before = path.read_text(encoding="utf-8")
    with pytest.raises(OSError):
        pins.record_pin(base + "/gone.whl", path, timeout=10)
    assert path.read_text(encoding="utf-8") == before


def test_record_pin_only_takes_https_or_loopback(tmp_path: Path) -> None:
    with pytest.raises(PinError, match="https"):
        pins.record_pin("http://example.com/x.whl", tmp_path / "p.toml")
    with pytest.raises(PinError, match="https"):
        pins.record_pin("ftp://127.0.0.1/x.whl", tmp_path / "p.toml")


# --- the command ------------------------------------------------------------------------------


def test_pin_command_records_urls_and_every_unrecorded_pin(
    server: Tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = server
    (served / "second.whl").write_bytes(b"second")
    first, second = base + "/artifact.tar.gz", base + "/second.whl"
    path = write_pins(tmp_path / "pins.toml", {second: ""})

    assert pins.main([first, "--pins", str(path), "--unrecorded"]) == 0

    out = capsys.readouterr().out
    assert "%s  %s" % (PAYLOAD_SHA, first) in out
    assert "%s  %s" % (hashlib.sha256(b"second").hexdigest(), second) in out
    assert all(pin.recorded for pin in pins.load_pins(path).values())


def test_pin_command_fails_for_a_url_that_does_not_download(
    server: Tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = server
    assert pins.main([base + "/nothing-here", "--pins", str(tmp_path / "p.toml")]) == 1
    assert "nothing-here" in capsys.readouterr().err
    assert pins.main(["--pins", str(tmp_path / "p.toml")]) == 2
    assert pins.main(["--unrecorded", "--pins", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_add_pin_command_registers_pin_on_a_cli() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="eikit")
    pins.add_pin_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pin", "https://example.com/a.whl", "--pins", "x.toml", "--force"])
    assert args.func is pins.run_pin_command
    assert (args.urls, args.pins, args.force) == (
        ["https://example.com/a.whl"],
        Path("x.toml"),
        True,
    )


# --- verify_file and the format ---------------------------------------------------------------


def test_verify_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    url = "https://example.com/f.bin"
    table = {
        url: pins.Pin(url, PAYLOAD_SHA, 1),
        "https://example.com/other": pins.Pin("https://example.com/other", OTHER_SHA, 4),
        "https://example.com/new": pins.Pin("https://example.com/new", "", 7),
    }
    assert pins.verify_file(path, url, table) == PAYLOAD_SHA
    with pytest.raises(PinMismatchError, match=PAYLOAD_SHA):
        pins.verify_file(path, "https://example.com/other", table)
    with pytest.raises(UnrecordedPinError, match="eikit pin https://example.com/new"):
        pins.verify_file(path, "https://example.com/new", table)
    with pytest.raises(UnknownPinError, match="eikit pin"):
        pins.verify_file(path, "https://example.com/unlisted", table)


@pytest.mark.parametrize(
    "text, message",
    [
        ('url = "https://a/b"\n', "unsupported line"),
        ('[[pin]]\nurl = "https://a/b"\n', "needs both url and sha256"),
        ('[[pin]]\nurl = "https://a/b"\nsha256 = "ABC"\n', "64 lowercase hex"),
        ('[[pin]]\nurl = "http://example.com/b"\nsha256 = ""\n', "https"),
        ('[[pin]]\nurl = "https://a/b"\nsha256 = ""\nnote = "x"\n', "unsupported line"),
        ('[[pin]]\nurl = "https://a/b"\nurl = "https://a/c"\nsha256 = ""\n', "given twice"),
        (
            '[[pin]]\nurl = "https://a/b"\nsha256 = ""\n' * 2,
            "already pinned at line 1",
        ),
        ("[pin]\n", "unsupported line"),
    ],
)
def test_format_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(PinsFormatError, match=message):
        pins.parse_pins(text, "test.toml")


def load_fetch_pinned() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("fetch_pinned", str(FETCH_PINNED))
    spec = importlib.util.spec_from_loader("fetch_pinned", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_repository_pins_file_is_valid_and_read_alike_by_every_reader() -> None:
    text = REPO_PINS.read_text(encoding="utf-8")
    ours = {pin.url: pin.sha256 for pin in pins.parse_pins(text, str(REPO_PINS))}
    assert ours, "docker/pins.toml lists no pin"
    assert all(url.startswith("https://") for url in ours)
    assert load_fetch_pinned().read_pins(str(REPO_PINS)) == ours
    if sys.version_info >= (3, 11):
        import tomllib

        parsed = tomllib.loads(text)
        assert set(parsed) == {"pin"}
        assert {entry["url"]: entry["sha256"] for entry in parsed["pin"]} == ours


def test_fetch_pinned_is_python_38_code() -> None:
    import ast

    ast.parse(FETCH_PINNED.read_text(encoding="utf-8"), feature_version=(3, 8))


# --- docker/fetch-pinned, run as the image build runs it --------------------------------------


def test_fetch_pinned_keeps_a_file_whose_sha256_matches(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    pins_file = write_pins(tmp_path / "pins.toml", {url: PAYLOAD_SHA})
    dest = tmp_path / "out"
    dest.mkdir()

    result = run_fetch("--pins", str(pins_file), url, str(dest))

    assert result.returncode == 0, result.stderr
    assert (dest / "artifact.tar.gz").read_bytes() == PAYLOAD
    assert "sha256 ok" in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["artifact.tar.gz"]


def test_fetch_pinned_fails_on_a_mismatch_and_keeps_nothing(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    pins_file = write_pins(tmp_path / "pins.toml", {url: OTHER_SHA})
    dest = tmp_path / "artifact.tar.gz"

    result = run_fetch("--pins", str(pins_file), url, str(dest))

    assert result.returncode == 5
    assert "sha256 mismatch" in result.stderr and PAYLOAD_SHA in result.stderr
    assert list(tmp_path.glob("artifact*")) == []


def test_fetch_pinned_refuses_a_url_missing_from_the_pins_without_fetching_it(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    pins_file = write_pins(tmp_path / "pins.toml", {base + "/other.whl": OTHER_SHA})

    result = run_fetch("--pins", str(pins_file), base + "/artifact.tar.gz", str(tmp_path / "x"))

    assert result.returncode == 3
    assert "not pinned" in result.stderr and "eikit pin " + base in result.stderr
    assert _QuietHandler.requests == []
    assert not (tmp_path / "x").exists()


def test_fetch_pinned_refuses_an_unrecorded_pin_and_says_how_to_record_it(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/artifact.tar.gz"
    pins_file = write_pins(tmp_path / "pins.toml", {url: ""})

    result = run_fetch("--pins", str(pins_file), url, str(tmp_path / "x"))

    assert result.returncode == 4
    assert "no sha256 is recorded" in result.stderr and "eikit pin %s" % url in result.stderr
    assert _QuietHandler.requests == []


def test_fetch_pinned_takes_a_verified_local_copy_for_offline_builds(tmp_path: Path) -> None:
    url = "https://unreachable.invalid/releases/torch-1.5.1%2Bcpu-cp38-cp38-linux_x86_64.whl"
    local = tmp_path / "wheelhouse"
    local.mkdir()
    (local / "torch-1.5.1+cpu-cp38-cp38-linux_x86_64.whl").write_bytes(PAYLOAD)
    dest = tmp_path / "dl"
    dest.mkdir()
    pins_file = write_pins(tmp_path / "pins.toml", {url: PAYLOAD_SHA})

    ok = run_fetch("--pins", str(pins_file), "--local-dir", str(local), url, str(dest))
    assert ok.returncode == 0, ok.stderr
    assert (dest / "torch-1.5.1+cpu-cp38-cp38-linux_x86_64.whl").read_bytes() == PAYLOAD

    write_pins(pins_file, {url: OTHER_SHA})
    bad = run_fetch("--pins", str(pins_file), "--local-dir", str(local), url, str(tmp_path / "y"))
    assert bad.returncode == 5 and "sha256 mismatch" in bad.stderr


def test_fetch_pinned_fails_when_the_download_fails(
    server: Tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    url = base + "/missing.whl"
    pins_file = write_pins(tmp_path / "pins.toml", {url: PAYLOAD_SHA})
    result = run_fetch("--pins", str(pins_file), url, str(tmp_path / "m.whl"))
    assert result.returncode == 6 and "404" in result.stderr
    assert list(tmp_path.glob("m.whl*")) == []


def test_fetch_pinned_fails_an_image_build_on_the_repositorys_unrecorded_pins(
    tmp_path: Path,
) -> None:
    unrecorded = [pin for pin in pins.load_pins(REPO_PINS).values() if not pin.recorded]
    if not unrecorded:
        pytest.skip("every pin in docker/pins.toml is recorded")
    url = unrecorded[0].url
    result = run_fetch("--pins", str(REPO_PINS), url, str(tmp_path))
    assert result.returncode == 4
    assert "eikit pin %s" % url in result.stderr
