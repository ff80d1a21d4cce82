#!/usr/bin/env python3
"""HTTP/2 protocol conformance cases against a running Hyperion (h2c, prior knowledge).

Usage: conformance.py HOST PORT [CASE ...]

Each case opens its own connection, writes frames byte by byte as a misbehaving or ordinary
client would (hyperframe + hpack, no client state machine that would refuse to send them),
and checks the server's answer: a response, RST_STREAM with an error code, or GOAWAY.
Prints one line per case ("ok NAME" or "FAIL NAME: why") and exits 1 if any case failed.

The server must serve spec/fixtures/h2.ru: GET / answers "hello", /big 100000 bytes,
POST /echo echoes the body, /static is a handle_static route.
"""

import socket
import sys
import time

from hpack import Encoder, Decoder
from hyperframe.frame import (
    ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
    RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 5, 6, 7, 8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 9, 11
NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
         5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL",
         9: "COMPRESSION_ERROR", 11: "ENHANCE_YOUR_CALM"}
TIMEOUT = 5.0


class Failed(Exception):
    pass


class Conn:
    """One raw HTTP/2 connection."""

    def __init__(self, host, port, settings=None):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.enc = Encoder()
        self.dec = Decoder()
        self.server_settings = {}
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
        # The server's SETTINGS comes first (RFC 9113 3.4); acknowledge it.
        frame = self.next_frame()
        if not isinstance(frame, SettingsFrame) or "ACK" in frame.flags:
            raise Failed("server did not open with SETTINGS: %r" % frame)
        self.server_settings = dict(frame.settings)
        self.send(SettingsFrame(0, flags=["ACK"]))

    def send(self, *frames):
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def raw(self, data):
        self.sock.sendall(data)

    def headers(self, stream_id, headers, end_stream=True, end_headers=True):
        flags = []
        if end_stream:
            flags.append("END_STREAM")
        if end_headers:
            flags.append("END_HEADERS")
        return HeadersFrame(stream_id, data=self.enc.encode(headers), flags=flags)

    def header_block(self, stream_id, headers, end_stream=True):
        """HEADERS and CONTINUATION frames of at most 16384 bytes carrying `headers`."""
        block = self.enc.encode(headers)
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)] or [b""]
        first = ["END_STREAM"] if end_stream else []
        if len(pieces) == 1:
            first.append("END_HEADERS")
        frames = [HeadersFrame(stream_id, data=pieces[0], flags=first)]
        for i, piece in enumerate(pieces[1:], 1):
            flags = ["END_HEADERS"] if i == len(pieces) - 1 else []
            frames.append(ContinuationFrame(stream_id, data=piece, flags=flags))
        return frames

    def next_frame(self, timeout=TIMEOUT):
        """The next frame, or None once the server closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                frame, length = Frame.parse_frame_header(self.buf[:9])
                if len(self.buf) >= 9 + length:
                    frame.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed("timed out waiting for a frame")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            except socket.timeout:
                raise Failed("timed out waiting for a frame")
            if not data:
                return None
            self.buf += data

    def outcome(self, stream_id=None, timeout=TIMEOUT):
        """Reads until a response ends on `stream_id`, a RST_STREAM on it, a GOAWAY, or the
        close. Returns ("response", status, body, headers), ("rst", code), ("goaway", code)
        or ("closed", None)."""
        status, body, headers = None, b"", {}
        while True:
            frame = self.next_frame(timeout)
            if frame is None:
                return ("closed", None)
            if isinstance(frame, GoAwayFrame):
                return ("goaway", frame.error_code)
            if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                self.send(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]))
                continue
            if frame.stream_id != stream_id or stream_id is None:
                continue
            if isinstance(frame, RstStreamFrame):
                return ("rst", frame.error_code)
            if isinstance(frame, HeadersFrame):
                fields = dict(self.dec.decode(frame.data))
                if status is None:
                    status = int(fields[":status"])
                    headers = fields
                if "END_STREAM" in frame.flags:
                    return ("response", status, body, headers)
            if isinstance(frame, DataFrame):
                body += frame.data
                if frame.flow_controlled_length:
                    self.send(WindowUpdateFrame(0, window_increment=frame.flow_controlled_length),
                              WindowUpdateFrame(stream_id, window_increment=frame.flow_controlled_length))
                if "END_STREAM" in frame.flags:
                    return ("response", status, body, headers)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def get(path, extra=()):
    return [(":method", "GET"), (":scheme", "http"), (":path", path),
            (":authority", "localhost")] + list(extra)


def post(path, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "localhost")] + list(extra)


def expect(result, *allowed):
    """`allowed` are (kind, code) pairs; kind "closed" matches a close without GOAWAY."""
    kind = result[0]
    code = result[1] if kind != "response" else result[1]
    for want_kind, want_code in allowed:
        if kind == want_kind and (want_code is None or code == want_code):
            return result
    raise Failed("got %s %s, expected one of %s" % (
        kind, NAMES.get(code, code),
        ", ".join("%s %s" % (k, NAMES.get(c, c)) for k, c in allowed)))


def connection_error(code):
    """A connection error with `code` (RFC 9113): GOAWAY with that code, then the close."""
    return [("goaway", code), ("closed", None)]


def alive(c, stream_id):
    """The connection still serves a request after a stream error."""
    c.send(c.headers(stream_id, get("/")))
    expect(c.outcome(stream_id), ("response", 200))


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# --- Connection setup and frame-level rules -------------------------------------------------

@case
def server_opens_with_settings_and_answers_a_request(host, port):
    c = Conn(host, port)
    if c.server_settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS) is None:
        raise Failed("no SETTINGS_MAX_CONCURRENT_STREAMS advertised")
    c.send(c.headers(1, get("/")))
    result = expect(c.outcome(1), ("response", 200))
    if result[2] != b"hello" or result[3].get(b"content-length", result[3].get("content-length")) is None:
        raise Failed("unexpected response %r" % (result,))


@case
def ping_is_answered_with_the_same_payload(host, port):
    c = Conn(host, port)
    c.send(PingFrame(0, opaque_data=b"abcdefgh"))
    while True:
        frame = c.next_frame()
        if frame is None:
            raise Failed("closed")
        if isinstance(frame, PingFrame) and "ACK" in frame.flags:
            if frame.opaque_data != b"abcdefgh":
                raise Failed("PING ACK payload %r" % frame.opaque_data)
            return


@case
def unknown_frame_types_are_ignored(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x03\xfa\x00\x00\x00\x00\x00abc")
    alive(c, 1)


@case
def data_on_stream_zero_is_a_connection_error(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    expect(c.outcome(), *connection_error(PROTOCOL_ERROR))


@case
def settings_with_a_bad_length_is_frame_size_error(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x05\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00")
    expect(c.outcome(), *connection_error(FRAME_SIZE_ERROR))


@case
def ping_with_a_bad_length_is_frame_size_error(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + b"1234567")
    expect(c.outcome(), *connection_error(FRAME_SIZE_ERROR))


@case
def frames_over_max_frame_size_are_frame_size_error(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, post("/echo"), end_stream=False))
    c.raw(b"\x00\x40\x01\x00\x00\x00\x00\x00\x01" + b"x" * 16385)
    expect(c.outcome(1), ("rst", FRAME_SIZE_ERROR), *connection_error(FRAME_SIZE_ERROR))


@case
def settings_ack_with_payload_is_frame_size_error(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x06\x04\x01\x00\x00\x00\x00\x00\x03\x00\x00\x00\x01")
    expect(c.outcome(), *connection_error(FRAME_SIZE_ERROR))


@case
def invalid_settings_values_are_connection_errors(host, port):
    c = Conn(host, port)
    # SETTINGS_ENABLE_PUSH = 2
    c.raw(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02")
    expect(c.outcome(), *connection_error(PROTOCOL_ERROR))
    c = Conn(host, port)
    # SETTINGS_INITIAL_WINDOW_SIZE = 2^31
    c.raw(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x80\x00\x00\x00")
    expect(c.outcome(), *connection_error(FLOW_CONTROL_ERROR))


# --- Stream identifiers and states ----------------------------------------------------------

@case
def even_stream_ids_from_a_client_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(2, get("/")))
    expect(c.outcome(2), *connection_error(PROTOCOL_ERROR))


@case
def decreasing_stream_ids_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(5, get("/")))
    expect(c.outcome(5), ("response", 200))
    c.send(c.headers(3, get("/")))
    expect(c.outcome(3), *connection_error(PROTOCOL_ERROR))


@case
def data_on_an_idle_stream_is_a_protocol_error(host, port):
    c = Conn(host, port)
    c.raw(b"\x00\x00\x01\x00\x00\x00\x00\x00\x07x")
    expect(c.outcome(7), *connection_error(PROTOCOL_ERROR))


@case
def data_after_end_stream_is_stream_closed(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, post("/echo", [("content-length", "2")]), end_stream=False),
           DataFrame(1, data=b"hi", flags=["END_STREAM"]), DataFrame(1, data=b"more"))
    result = c.outcome(1)
    if result[0] == "response":
        result = c.outcome(1)
    expect(result, ("rst", STREAM_CLOSED), *connection_error(STREAM_CLOSED))


@case
def rst_stream_on_an_idle_stream_is_a_protocol_error(host, port):
    c = Conn(host, port)
    c.send(RstStreamFrame(9, error_code=CANCEL))
    expect(c.outcome(), *connection_error(PROTOCOL_ERROR))


@case
def window_update_of_zero_is_an_error(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, post("/echo"), end_stream=False))
    c.raw(b"\x00\x00\x04\x08\x00\x00\x00\x00\x01\x00\x00\x00\x00")
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR), *connection_error(PROTOCOL_ERROR))


@case
def connection_window_overflow_is_flow_control_error(host, port):
    c = Conn(host, port)
    c.send(WindowUpdateFrame(0, window_increment=0x7fffffff))
    expect(c.outcome(), *connection_error(FLOW_CONTROL_ERROR))


@case
def streams_past_max_concurrent_streams_are_refused(host, port):
    c = Conn(host, port)
    limit = c.server_settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS)
    # Open `limit` streams that stay open (bodies never end), then one more.
    frames = [c.headers(1 + 2 * i, post("/echo"), end_stream=False) for i in range(limit + 1)]
    c.send(*frames)
    last = 1 + 2 * limit
    expect(c.outcome(last), ("rst", REFUSED_STREAM), ("rst", PROTOCOL_ERROR),
           *connection_error(PROTOCOL_ERROR))


# --- Header blocks and HPACK ----------------------------------------------------------------

@case
def missing_pseudo_headers_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, [(":scheme", "http"), (":path", "/"), (":authority", "x")]))
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR))
    alive(c, 3)


@case
def pseudo_headers_after_regular_ones_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, [(":method", "GET"), ("x-a", "1"), (":path", "/"), (":scheme", "http")]))
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR))
    alive(c, 3)


@case
def connection_specific_headers_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, get("/", [("connection", "keep-alive")])))
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR))
    c.send(c.headers(3, get("/", [("te", "gzip")])))
    expect(c.outcome(3), ("rst", PROTOCOL_ERROR))
    c.send(c.headers(5, get("/", [("te", "trailers")])))
    expect(c.outcome(5), ("response", 200))


@case
def uppercase_header_names_are_protocol_errors(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, get("/", [("X-Upper", "1")])))
    # RFC 9113 8.2.1: a malformed request, a stream error.
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR))
    alive(c, 3)


@case
def content_length_mismatch_is_a_protocol_error(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, post("/echo", [("content-length", "10")]), end_stream=False),
           DataFrame(1, data=b"short", flags=["END_STREAM"]))
    expect(c.outcome(1), ("rst", PROTOCOL_ERROR))
    alive(c, 3)


@case
def continuation_without_headers_is_a_protocol_error(host, port):
    c = Conn(host, port)
    c.send(ContinuationFrame(1, data=b"", flags=["END_HEADERS"]))
    expect(c.outcome(), *connection_error(PROTOCOL_ERROR))


@case
def header_block_split_over_continuations_is_accepted(host, port):
    c = Conn(host, port)
    block = c.enc.encode(get("/", [("x-long", "v" * 3000)]))
    c.send(HeadersFrame(1, data=block[:100], flags=["END_STREAM"]),
           ContinuationFrame(1, data=block[100:1000]),
           ContinuationFrame(1, data=block[1000:], flags=["END_HEADERS"]))
    expect(c.outcome(1), ("response", 200))


@case
def interleaved_frame_inside_a_header_block_is_a_protocol_error(host, port):
    c = Conn(host, port)
    block = c.enc.encode(get("/"))
    c.send(HeadersFrame(1, data=block[:5], flags=["END_STREAM"]), PingFrame(0, opaque_data=b"12345678"))
    expect(c.outcome(1), *connection_error(PROTOCOL_ERROR))


@case
def invalid_hpack_index_is_a_compression_error(host, port):
    c = Conn(host, port)
    # Indexed field 126: far past the static table and an empty dynamic table.
    c.send(HeadersFrame(1, data=b"\xfe", flags=["END_STREAM", "END_HEADERS"]))
    expect(c.outcome(1), *connection_error(COMPRESSION_ERROR))


@case
def hpack_bomb_is_bounded_by_max_header_list_size(host, port):
    c = Conn(host, port)
    # One 4 KiB field added to the dynamic table, then referenced many times: a small block
    # that decodes to far more than SETTINGS_MAX_HEADER_LIST_SIZE.
    big = ("x-bomb", "b" * 4000)
    first = c.enc.encode([*get("/"), big])
    c.send(HeadersFrame(1, data=first, flags=["END_STREAM", "END_HEADERS"]))
    expect(c.outcome(1), ("response", 200))
    block = c.enc.encode([*get("/"), *([big] * 100)])
    if len(block) > 16384:
        raise Failed("bomb block unexpectedly large: %d" % len(block))
    c.send(HeadersFrame(3, data=block, flags=["END_STREAM", "END_HEADERS"]))
    expect(c.outcome(3), ("response", 431))
    alive(c, 5)


@case
def oversized_header_list_is_answered_431(host, port):
    c = Conn(host, port)
    c.send(*c.header_block(1, get("/", [("x-big-%d" % i, "v" * 1000) for i in range(80)])))
    expect(c.outcome(1), ("response", 431))
    alive(c, 3)


# --- Abuse defences -------------------------------------------------------------------------

@case
def continuation_flood_ends_the_connection(host, port):
    c = Conn(host, port)
    block = c.enc.encode(get("/"))
    frames = [HeadersFrame(1, data=block[:3], flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, data=b"") for _ in range(2000)]
    try:
        c.send(*frames)
    except (BrokenPipeError, ConnectionResetError):
        return
    expect(c.outcome(1), ("goaway", ENHANCE_YOUR_CALM), ("closed", None))


@case
def settings_flood_ends_the_connection(host, port):
    c = Conn(host, port)
    try:
        for _ in range(10):
            c.send(*[SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 16384}) for _ in range(100)])
    except (BrokenPipeError, ConnectionResetError):
        return
    result = c.outcome()
    while result[0] == "response":
        result = c.outcome()
    expect(result, ("goaway", ENHANCE_YOUR_CALM), ("closed", None))


@case
def ping_flood_ends_the_connection(host, port):
    c = Conn(host, port)
    try:
        for _ in range(10):
            c.send(*[PingFrame(0, opaque_data=b"floodflo") for _ in range(100)])
    except (BrokenPipeError, ConnectionResetError):
        return
    while True:
        frame = c.next_frame()
        if frame is None:
            return
        if isinstance(frame, GoAwayFrame):
            if frame.error_code != ENHANCE_YOUR_CALM:
                raise Failed("GOAWAY %s" % NAMES.get(frame.error_code))
            return


@case
def rapid_reset_ends_the_connection(host, port):
    c = Conn(host, port)
    stream = 1
    try:
        for _ in range(20):
            frames = []
            for _ in range(100):
                frames.append(c.headers(stream, get("/")))
                frames.append(RstStreamFrame(stream, error_code=CANCEL))
                stream += 2
            c.send(*frames)
    except (BrokenPipeError, ConnectionResetError):
        return
    while True:
        frame = c.next_frame()
        if frame is None:
            raise Failed("closed without GOAWAY")
        if isinstance(frame, GoAwayFrame):
            if frame.error_code != ENHANCE_YOUR_CALM:
                raise Failed("GOAWAY %s" % NAMES.get(frame.error_code))
            return


# --- Flow control and bodies ----------------------------------------------------------------

@case
def response_respects_a_small_client_window(host, port):
    c = Conn(host, port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1000})
    c.send(c.headers(1, get("/big")))
    received = 0
    while True:
        frame = c.next_frame()
        if frame is None:
            raise Failed("closed")
        if isinstance(frame, DataFrame) and frame.stream_id == 1:
            received += len(frame.data)
            if received > 1000:
                raise Failed("server sent %d bytes into a 1000-byte window" % received)
            if received == 1000:
                break
    # Nothing more until the window opens; then the rest.
    c.send(WindowUpdateFrame(1, window_increment=200000), WindowUpdateFrame(0, window_increment=200000))
    while True:
        frame = c.next_frame()
        if frame is None:
            raise Failed("closed")
        if isinstance(frame, DataFrame) and frame.stream_id == 1:
            received += len(frame.data)
            if "END_STREAM" in frame.flags:
                break
    if received != 100000:
        raise Failed("received %d bytes" % received)


@case
def request_body_and_trailers_reach_the_app(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, post("/echo"), end_stream=False),
           DataFrame(1, data=b"abc"), DataFrame(1, data=b"def"),
           HeadersFrame(1, data=c.enc.encode([("x-trailer", "t")]), flags=["END_STREAM", "END_HEADERS"]))
    result = expect(c.outcome(1), ("response", 200))
    if result[2] != b"abcdef":
        raise Failed("echo %r" % result[2])


@case
def static_route_answers_with_headers_and_data(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, get("/static")))
    result = expect(c.outcome(1), ("response", 200))
    if result[2] != b"static ok":
        raise Failed("body %r" % result[2])


@case
def goaway_from_the_client_is_honoured(host, port):
    c = Conn(host, port)
    c.send(c.headers(1, get("/")))
    expect(c.outcome(1), ("response", 200))
    c.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR))
    frame = c.next_frame()
    while frame is not None and not isinstance(frame, GoAwayFrame):
        frame = c.next_frame()


def main(argv):
    host, port = argv[1], int(argv[2])
    wanted = set(argv[3:])
    failed = 0
    for fn in CASES:
        if wanted and fn.__name__ not in wanted:
            continue
        try:
            fn(host, port)
            print("ok %s" % fn.__name__)
        except Failed as e:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, e))
        except Exception as e:  # noqa: BLE001 - a crash in a case is that case's failure
            failed += 1
            print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e))
        sys.stdout.flush()
    print("%d cases, %d failed" % (len([f for f in CASES if not wanted or f.__name__ in wanted]), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
