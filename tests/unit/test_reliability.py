"""The reliability harness's parts: counting, the verdict, the report, the sample model."""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from eikit import reliability
from eikit.bench.load import Request
from eikit.cli import build_parser
from eikit.errors import ConfigurationError


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        answers = self.server.answers  # type: ignore[attr-defined]
        status = 200 if not answers or answers.pop(0) else 500
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.answers = [True, False, True]  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_client(port: int, stop_after: int) -> reliability.Tally:
    tally = reliability.Tally()
    stop = threading.Event()
    request = Request.invocation("http://127.0.0.1:%d" % port, b"{}", "application/json")
    client = reliability.Load(request, 1, 5.0, tally, stop)
    client.start()
    while tally.snapshot()["sent"] < stop_after:
        client.join(0.01)
    stop.set()
    client.join(10)
    return tally


def test_the_client_counts_answers_by_status(http_server):
    tally = _run_client(http_server.server_address[1], stop_after=3)
    counts = tally.snapshot()
    assert counts["errors"] == {"500": 1} and counts["ok"] == counts["sent"] - 1
    assert counts["unanswered"] == 0


def test_the_client_counts_a_connection_closed_without_an_answer_as_unanswered():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    listener.settimeout(0.1)
    done = threading.Event()

    def close_everything() -> None:  # read each request, then hang up without answering
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(5)
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=close_everything, daemon=True)
    thread.start()
    tally = _run_client(listener.getsockname()[1], stop_after=2)
    done.set()
    thread.join(10)
    listener.close()
    counts = tally.snapshot()
    assert counts["unanswered"] == counts["sent"] >= 2 and counts["ok"] == 0
    reasons = {"read", "socket"}  # eikit.bench.load's kinds for a connection that broke
    assert set(counts["unanswered_reasons"]) <= reasons, counts


def _report(**changes: Any) -> Dict[str, Any]:
    report: Dict[str, Any] = {
        "sent": 100,
        "ok": 98,
        "errors": {"500": 1, "504": 1},
        "unanswered": 0,
        "unanswered_reasons": {},
        "duration_s": 10.0,
        "requests_per_s": 10.0,
        "workers": 2,
        "concurrency": 8,
        "timeout_s": 2.0,
        "faults": [
            {"fault": "kill", "pid": 11, "at_s": 3.3, "recovered_s": 1.5},
            {"fault": "hang", "pid": 12, "at_s": 6.6, "recovered_s": 3.9},
        ],
        "pings": {"200": 50},
        "rss_before_mib": 500.0,
        "rss_after_mib": 510.0,
        "server_exit_code": 0,
    }
    report.update(changes)
    return report


def test_the_verdict_needs_every_request_answered_every_fault_recovered_and_a_clean_stop():
    assert reliability.verdict(_report())
    assert not reliability.verdict(_report(unanswered=1))
    lost = [{"fault": "kill", "pid": 11, "at_s": 3.3, "recovered_s": None}]
    assert not reliability.verdict(_report(faults=lost))
    assert not reliability.verdict(_report(server_exit_code=1))


def test_the_text_report_names_every_figure():
    report = _report()
    report["passed"] = True
    text = reliability.format_report(report)
    for expected in (
        "requests sent        100",
        "answered 2xx         98",
        "500: 1, 504: 1",
        "unanswered           0",
        "fault kill (pid 11)  at 3.3s: recovered in 1.50s",
        "/ping during the run 200: 50",
        "500 MiB before, 510 MiB after",
        "PASS",
    ):
        assert expected in text, text


def test_faults_and_request_options_are_checked():
    parser = build_parser()
    args = parser.parse_args(["reliability", "--faults", "hang,kill", "--duration", "5"])
    assert args.faults == ["hang", "kill"] and args.duration == 5.0
    with pytest.raises(SystemExit):
        parser.parse_args(["reliability", "--faults", "kill,explode"])
    with_model = argparse.Namespace(body=None, data=None, model_dir="model")
    with pytest.raises(ConfigurationError, match="--body or --data"):
        reliability._request_body(with_model)
    assert reliability._request_body(argparse.Namespace(body=None, data="[1]", model_dir="m"))
    sample = argparse.Namespace(body=None, data=None, model_dir=None)
    assert reliability._request_body(sample) == reliability.SAMPLE_BODY


def test_the_built_in_sample_classifies_the_request_it_sends(tmp_path: Path):
    base = reliability.write_sample(tmp_path / "ml")
    hooks: Dict[str, Any] = {}
    exec((base / "model" / "code" / "inference.py").read_text(), hooks)
    model = hooks["model_fn"](str(base / "model"))
    data = hooks["input_fn"](reliability.SAMPLE_BODY, "application/json")
    body, content_type = hooks["output_fn"](hooks["predict_fn"](data, model), "application/json")
    assert json.loads(body) == {"labels": ["setosa", "virginica"]}
    assert content_type == "application/json"
