"""A recording HTTP proxy for MCP's Streamable HTTP transport (stdlib only).

It sits between a real MCP client and a real MCP server and keeps every exchange as it
happened on the wire: method, path, request headers and body, response status and headers,
and the response body as the chunks arrived from the upstream (an SSE answer stays a list
of chunks, each with its arrival time), so the gateway's tests can replay both the content
and the framing. Each chunk is forwarded to the client as soon as it arrives: a progress
stream or the GET stream reaches the client live, as it would through the gateway.

    proxy = RecordingProxy("http://127.0.0.1:3001")
    proxy.start()            # listens on 127.0.0.1, a free port (or `port=`): proxy.url
    ...                      # point the client at proxy.url + "/mcp"
    proxy.stop()
    proxy.exchanges          # list of dicts, in the order the requests arrived
"""

import base64
import http.client
import http.server
import socket
import threading
import time
import urllib.parse

# Hop-by-hop headers (RFC 9110 section 7.6.1) are the proxy's own business on each leg.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
}
# A request body larger than this is refused: MCP requests are small JSON-RPC messages.
MAX_REQUEST_BODY = 8 << 20
# The upstream's answer is awaited this long (a long-running tool streams within it).
UPSTREAM_TIMEOUT_S = 120


def body_text(data: bytes) -> dict:
    """A body as JSON-safe fields: text when it is UTF-8, base64 otherwise."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


class RecordingProxy:
    def __init__(self, upstream: str, port: int = 0):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.exchanges: list[dict] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._open = 0
        self._idle = threading.Condition(self._lock)
        # The client connections being served, so that stop() takes the proxy down whole.
        self._connections: set = set()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no exchange is in flight (a GET stream ends when its session does)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        """Stops listening and closes every client connection, kept-alive ones included: to
        its clients the upstream is then down."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _begin(self, exchange: dict) -> None:
        with self._lock:
            exchange["seq"] = len(self.exchanges)
            self.exchanges.append(exchange)
            self._open += 1

    def _end(self) -> None:
        with self._idle:
            self._open -= 1
            self._idle.notify_all()

    def _handler_class(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # the exchanges are the log
                pass

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self):
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                super().finish()

            def do_GET(self):
                self._forward()

            def do_POST(self):
                self._forward()

            def do_DELETE(self):
                self._forward()

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BODY:
                    self.send_error(413)
                    return
                body = self.rfile.read(length) if length else b""
                exchange = {
                    "request": {
                        "method": self.command,
                        "path": self.path,
                        "headers": [[k, v] for k, v in self.headers.items()],
                        "body": body_text(body),
                    },
                }
                proxy._begin(exchange)
                started = time.monotonic()
                try:
                    self._relay(exchange, body, started)
                finally:
                    exchange["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
                    proxy._end()

            def _relay(self, exchange, body, started):
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT_S
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                resp = upstream.getresponse()
                kept = [[k, v] for k, v in resp.getheaders()]
                exchange["response"] = {"status": resp.status, "headers": kept, "chunks": []}
                self.send_response_only(resp.status, resp.reason)
                sized = resp.getheader("Content-Length")
                for k, v in kept:
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                chunked = sized is None and self.command != "HEAD" and resp.status not in (204, 304)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunks = exchange["response"]["chunks"]
                hung_up = threading.Event()
                if chunked:
                    self._watch_client(upstream, hung_up)
                try:
                    while True:
                        data = resp.read1(65536)
                        if not data:
                            break
                        at = round((time.monotonic() - started) * 1000, 1)
                        chunks.append({"t_ms": at, **body_text(data)})
                        if chunked:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        else:
                            self.wfile.write(data)
                        self.wfile.flush()
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                except (http.client.HTTPException, OSError, ValueError) as e:
                    # The client hung up (it left its GET stream open and exited), or the
                    # upstream broke the stream: the record says which.
                    key = "client_closed" if hung_up.is_set() or isinstance(e, BrokenPipeError) else "upstream_error"
                    exchange["response"][key] = True
                    self.close_connection = True
                finally:
                    upstream.close()

            def _watch_client(self, upstream, hung_up):
                """Ends the upstream leg when the client closes its connection while the
                upstream is silent (an idle GET stream): a gateway sees the same close."""

                def watch():
                    try:
                        alive = self.connection.recv(1, socket.MSG_PEEK)
                    except OSError:
                        alive = b""
                    if alive:
                        return  # the client's next request on this connection
                    hung_up.set()
                    sock = upstream.sock
                    if sock is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

                threading.Thread(target=watch, daemon=True).start()

        return Handler
