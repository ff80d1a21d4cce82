#!/usr/bin/env python3
"""One HTTP/2 request over h2c (prior knowledge), reported frame by frame.

Usage: fetch.py PORT REQUEST_JSON

REQUEST_JSON: {"method": "POST", "path": "/x", "headers": [["name", "value"], ...],
"body": ["piece", ...], "reset": false, "open": false} (body pieces are Latin-1 text, each
sent as its own DATA frame; the last one ends the stream; no body: HEADERS with END_STREAM;
with "open" the body never ends while the response is read; with "reset" the body does not
end either: once a PING sent after the pieces is acknowledged, the stream is reset with
CANCEL and the script exits).

Prints one JSON object: status, headers, the response's DATA frames in order (Latin-1 text,
with whether each carried END_STREAM), trailers (with END_STREAM), and a reset code if the
stream was reset.
"""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    port = int(sys.argv[1])
    req = json.loads(sys.argv[2])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", req.get("method", "GET")), (":path", req["path"]),
               (":scheme", "http"), (":authority", "localhost")]
    headers += [tuple(h) for h in req.get("headers", [])]
    body = req.get("body", [])
    sid = conn.get_next_available_stream_id()
    reset = req.get("reset", False)
    keep_open = reset or req.get("open", False)
    conn.send_headers(sid, headers, end_stream=not body and not keep_open)
    for i, piece in enumerate(body):
        last = i == len(body) - 1 and not keep_open
        conn.send_data(sid, piece.encode("latin-1"), end_stream=last)
    if reset:
        # A PING after the request: its acknowledgement shows the server has taken the request
        # in, so the reset reaches a stream the application is already reading.
        conn.ping(b"takenin!")
    sock.sendall(conn.data_to_send())
    if reset:
        acked = False
        while not acked:
            chunk = sock.recv(65536)
            if not chunk:
                break
            acked = any(isinstance(e, h2.events.PingAckReceived) for e in conn.receive_data(chunk))
        conn.reset_stream(sid, error_code=8)
        sock.sendall(conn.data_to_send())
        sock.recv(65536)
        sock.close()
        print(json.dumps({"reset_sent": True}))
        return

    out = {"status": None, "headers": {}, "data": [], "trailers": None, "reset": None}
    done = False
    while not done:
        chunk = sock.recv(65536)
        if not chunk:
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                for name, value in event.headers:
                    name, value = name.decode(), value.decode("latin-1")
                    if name == ":status":
                        out["status"] = int(value)
                    else:
                        out["headers"][name] = value
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
                out["data"].append({"bytes": event.data.decode("latin-1"),
                                    "end_stream": event.stream_ended is not None})
            elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == sid:
                out["trailers"] = {
                    "fields": [[n.decode(), v.decode("latin-1")] for n, v in event.headers],
                    "end_stream": event.stream_ended is not None,
                }
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                out["reset"] = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
