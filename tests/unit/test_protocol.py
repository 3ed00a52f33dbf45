import math
import os
import socket

from eikit.server import protocol


def frame(kind, meta, body):
    return protocol.head(kind, 7, meta, len(body)) + body


def test_frames_split_anywhere_are_reassembled():
    big = os.urandom(300_000)
    stream = frame(protocol.RESPONSE, b"200\0application/x-npy\0", big) + frame(
        protocol.RESPONSE, b"400\0application/json\0", b"{}"
    )
    for step in (1, 5, 13, 4096, 65536, len(stream)):
        buffer = protocol.FrameBuffer()
        frames = []
        for start in range(0, len(stream), step):
            frames += buffer.feed(stream[start : start + step])
        assert [(k, m, b) for k, _, m, b in frames] == [
            (protocol.RESPONSE, b"200\0application/x-npy\0", big),
            (protocol.RESPONSE, b"400\0application/json\0", b"{}"),
        ]


def test_request_and_response_meta_round_trip():
    headers = [(b"content-type", b"text/csv"), (b"x-amzn-sagemaker-custom-attributes", b"a=1:b")]
    meta = protocol.request_meta(b"0a1b-7", b"text/csv", b"", protocol.join_headers(headers))
    request_id, content_type, accept, blob = protocol.parse_request_meta(meta)
    assert (request_id, content_type, accept) == ("0a1b-7", "text/csv", None)
    assert protocol.split_headers(blob) == headers
    status, kind, extra, timings = protocol.parse_response_meta(
        protocol.response_meta(422, "application/json", {"X-Trace": "t:1"}, (0.5, 0.25, 2.0))
    )
    assert (status, kind, extra, timings) == (
        422,
        b"application/json",
        [(b"X-Trace", b"t:1")],
        (0.5, 0.25, 2.0),
    )
    untimed = protocol.parse_response_meta(protocol.response_meta(200, "text/csv", {}))[3]
    assert all(math.isnan(value) for value in untimed)


def test_blocking_reader_sees_eof_as_none():
    left, right = socket.socketpair()
    protocol.send(left, protocol.REQUEST, 3, b"meta", os.urandom(100_000))
    left.close()
    reader = protocol.FrameReader(right)
    kind, request_id, meta, body = reader.read()
    assert (kind, request_id, meta, len(body)) == (protocol.REQUEST, 3, b"meta", 100_000)
    assert reader.read() is None
    right.close()
