"""Logging: levels as AWS's containers take them; nothing a client sent at INFO; bounded lines."""

from __future__ import annotations

import io
import logging

import pytest

from eikit import logs
from eikit.errors import BadRequest, InferenceError, client_message, shorten


@pytest.fixture
def stream():
    """Our handler on the root logger, writing to a buffer; the root logger restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


@pytest.mark.parametrize(
    "given, number, name",
    [
        ("20", 20, "INFO"),
        (20, 20, "INFO"),
        ("25", 25, "25"),
        ("5", 5, "5"),
        ("debug", 10, "DEBUG"),
        ("WARN", 30, "WARNING"),
        ("Critical", 50, "CRITICAL"),
    ],
)
def test_levels_are_names_or_numbers(given, number, name):
    assert logs.level_number(given) == number
    assert logs.level_name(given) == name
    assert logs.level_number(logs.level_name(given)) == number  # the name round-trips


@pytest.mark.parametrize("given", ["verbose", "-1", "", "Level 25", "2.5"])
def test_unknown_levels_are_refused(given):
    with pytest.raises(ValueError):
        logs.level_number(given)


def test_a_level_between_names_is_applied(stream):
    logs.configure("25", stream=stream)
    log = logging.getLogger("eikit.test")
    log.info("hidden")
    log.log(25, "between")
    log.warning("shown")
    text = stream.getvalue()
    assert "hidden" not in text and "between" in text and "shown" in text


def test_a_refused_request_is_logged_without_its_content_at_info(stream):
    logs.configure("INFO", role="worker-0", stream=stream)
    cell = "s3cr3t" * 20_000
    exc = BadRequest("body is not numeric CSV: could not convert string to float: %r" % cell)
    logs.rejected(logging.getLogger("eikit.server.worker"), 400, exc)
    line = stream.getvalue()
    assert "request rejected (400 bad_request)" in line
    assert "s3cr3t" not in line and "CSV" not in line
    assert line.count("\n") == 1


def test_at_debug_a_refused_request_says_why_on_one_short_line(stream):
    logs.configure("DEBUG", stream=stream)
    exc = InferenceError("bad row\nFAKE 2026 INFO forged line\n" + "x" * 100_000, status=422)
    logs.rejected(logging.getLogger("eikit.server.worker"), 422, exc)
    line = stream.getvalue()
    assert "request rejected (422 inference_error): bad row\\x0aFAKE" in line
    assert line.count("\n") == 1  # the newlines in the message are escaped, not written
    assert len(line) < logs.MAX_DETAIL + 200 and "more characters" in line


def test_no_record_is_longer_than_the_bound(stream):
    logs.configure("INFO", stream=stream)
    log = logging.getLogger("eikit.test")
    huge = "\x80" * 60_000
    log.error("accept %r", huge)  # repr would write 4 characters per byte
    try:
        raise ValueError(huge)
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue()
    assert len(lines) < 2 * (logs.MAX_RECORD + 100)
    assert lines.count("more characters)") == 2


def test_client_messages_are_bounded_and_say_so():
    assert shorten("abc", 3) == "abc"
    assert shorten("abcdef", 3) == "abc... (3 more characters)"
    message = client_message(BadRequest("cell " + "a" * 130_000))
    assert message.startswith("cell aaa") and message.endswith("(129505 more characters)")
    assert len(client_message(RuntimeError("z" * 10_000), 100)) < 140
