"""The recording proxy keeps what the fixtures are for: an SSE answer chunk by chunk, each
forwarded before the next exists, a JSON answer whole, a 202 with no body, and a client
that hangs up on a silent stream recorded as such. Stdlib only (the mcp layer of
scripts/test runs it):

    python3 tests/mcp/test_record_proxy.py
"""

import http.client
import http.server
import json
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_proxy import RecordingProxy  # noqa: E402

# The upstream holds its second SSE event until the test has seen the first arrive
# through the proxy: a proxy that buffered the answer would never release it.
FIRST_SEEN = threading.Event()
HANG_UP = threading.Event()
EVENT_1 = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n'
EVENT_2 = b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "id" not in body:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif body["method"] == "tools/list":
            data = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in (EVENT_1, EVENT_2):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                FIRST_SEEN.wait(5)
            self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        # A GET stream that never says anything: only the client's close ends it.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        HANG_UP.wait(10)


class RecordProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        cls.upstream.daemon_threads = True
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        cls.proxy = RecordingProxy(f"http://127.0.0.1:{cls.upstream.server_address[1]}")
        cls.proxy.start()
        host, port = cls.proxy.url.removeprefix("http://").split(":")
        cls.address = (host, int(port))

    @classmethod
    def tearDownClass(cls):
        HANG_UP.set()
        cls.proxy.stop()
        cls.upstream.shutdown()

    def post(self, body):
        conn = http.client.HTTPConnection(*self.address, timeout=10)
        conn.request("POST", "/mcp", body=json.dumps(body),
                     headers={"Content-Type": "application/json",
                              "Accept": "application/json, text/event-stream"})
        return conn, conn.getresponse()

    def last(self):
        self.assertTrue(self.proxy.wait_idle(5))
        return self.proxy.exchanges[-1]

    def test_sse_is_forwarded_and_recorded_chunk_by_chunk(self):
        conn, resp = self.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": "slow"}})
        self.assertEqual(resp.read1(65536), EVENT_1)  # before the upstream sent EVENT_2
        FIRST_SEEN.set()
        self.assertEqual(resp.read(), EVENT_2)
        conn.close()
        ex = self.last()
        self.assertEqual([c["text"].encode() for c in ex["response"]["chunks"]], [EVENT_1, EVENT_2])
        self.assertLessEqual(ex["response"]["chunks"][0]["t_ms"], ex["response"]["chunks"][1]["t_ms"])
        self.assertEqual(json.loads(ex["request"]["body"]["text"])["params"]["name"], "slow")

    def test_json_answer_and_notification(self):
        conn, resp = self.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        self.assertEqual(json.loads(resp.read())["result"], {"tools": []})
        ex = self.last()
        self.assertEqual(ex["response"]["status"], 200)
        self.assertEqual(len(ex["response"]["chunks"]), 1)
        conn.close()
        conn, resp = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.assertEqual((resp.status, resp.read()), (202, b""))
        ex = self.last()
        self.assertEqual((ex["response"]["status"], ex["response"]["chunks"]), (202, []))
        conn.close()

    def test_client_hanging_up_on_a_silent_stream_is_recorded(self):
        conn = http.client.HTTPConnection(*self.address, timeout=10)
        conn.request("GET", "/mcp", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        time.sleep(0.2)
        conn.close()
        ex = self.last()
        self.assertEqual(ex["request"]["method"], "GET")
        self.assertTrue(ex["response"].get("client_closed"), ex["response"])


if __name__ == "__main__":
    # The plain closing line scripts/test counts.
    outcome = unittest.main(exit=False).result
    failed = len(outcome.failures) + len(outcome.errors)
    print(f"{outcome.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
