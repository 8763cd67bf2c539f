#!/usr/bin/env python3
"""An OTLP/HTTP logs receiver for the test bed: `POST /v1/logs` with a protobuf
ExportLogsServiceRequest (opentelemetry-proto, pinned in scripts/lib.sh), each log record
written as one JSON line: its resource and scope, body, time and attributes with their
OTLP types kept ({"string": ...}, {"int": ...}, ...). Every request's raw body is kept
too, so a test can search the bytes that left Envoy.

Usage: receiver.py PORT_FILE OUT_DIR   (binds 127.0.0.1 on a free port, writes it to
PORT_FILE; OUT_DIR gets records.jsonl, raw/<n>.bin and requests.jsonl)
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

LOCK = threading.Lock()
COUNT = [0]


def value(v):
    """An OTLP AnyValue as {type: value}, lists and maps recursively."""
    kind = v.WhichOneof("value")
    if kind is None:
        return {"empty": None}
    if kind == "string_value":
        return {"string": v.string_value}
    if kind == "int_value":
        return {"int": v.int_value}
    if kind == "bool_value":
        return {"bool": v.bool_value}
    if kind == "double_value":
        return {"double": v.double_value}
    if kind == "bytes_value":
        return {"bytes": v.bytes_value.hex()}
    if kind == "array_value":
        return {"array": [value(x) for x in v.array_value.values]}
    return {"kvlist": {kv.key: value(kv.value) for kv in v.kvlist_value.values}}


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    out_dir = "."

    def log_message(self, *_):
        pass

    def body(self):
        """The request's body, plain or chunked (Envoy's async client sends chunks)."""
        if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def do_POST(self):
        body = self.body()
        if self.path != "/v1/logs":
            self.send_response(404)
            self.end_headers()
            return
        req = ExportLogsServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as e:  # a body that is not the message: the test fails on it
            self.send_response(400)
            self.end_headers()
            print(f"receiver: undecodable body: {e}", file=sys.stderr)
            return
        lines = []
        for rl in req.resource_logs:
            resource = attributes(rl.resource.attributes)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    lines.append(
                        json.dumps(
                            {
                                "resource": resource,
                                "scope": sl.scope.name,
                                "time_unix_nano": r.time_unix_nano,
                                "body": value(r.body),
                                "attributes": attributes(r.attributes),
                            }
                        )
                    )
        with LOCK:
            COUNT[0] += 1
            with open(os.path.join(self.out_dir, "raw", f"{COUNT[0]}.bin"), "wb") as f:
                f.write(body)
            with open(os.path.join(self.out_dir, "requests.jsonl"), "a") as f:
                f.write(
                    json.dumps(
                        {
                            "content_type": self.headers.get("content-type"),
                            "headers": sorted(k.lower() for k in self.headers.keys()),
                            "bytes": len(body),
                            "records": len(lines),
                        }
                    )
                    + "\n"
                )
            with open(os.path.join(self.out_dir, "records.jsonl"), "a") as f:
                for line in lines:
                    f.write(line + "\n")
        answer = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def main():
    port_file, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out_dir, "raw"), exist_ok=True)
    Handler.out_dir = out_dir
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
