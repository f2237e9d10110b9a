#!/usr/bin/python3
"""musiq serve against real clients (http.client, raw sockets, curl) on 127.0.0.1.

Scores equal `musiq score` on the same files exactly, from concurrent clients too; requests
share packed passes; every hostile case gets its status and the server keeps serving;
SIGTERM finishes what is queued and exits 0; a bounded load test. Run by ctest with
MUSIQ_BIN set; uses a small random model. Listens on 127.0.0.1 only, on a free port.
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from fixture_models import SMALL_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))
DATA = os.path.join(ROOT, "tests", "data")
HOST = "127.0.0.1"
IMAGES = [os.path.join(DATA, n) for n in ("chelsea_200x133_q90.jpg", "camera_gray_459x371_q90.jpg",
                                          "coffee_portrait_267x400.png",
                                          "hubble_crop_768x204_q90.jpg")]
BROKEN = b"\xff\xd8\xff not really a jpeg"


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Server:
    """A `musiq serve` process on a free port of 127.0.0.1."""

    def __init__(self, model, *args, env=None):
        self.proc = subprocess.Popen([MUSIQ, "serve", "--weights", model, "--device", "cpu",
                                      "--host", HOST, "--port", "0", *args],
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.stderr = []
        line = self.proc.stderr.readline()
        self.stderr.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError("server did not start: " + line + self.proc.stderr.read())
        self.port = int(match.group(1))
        self.reader = threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr),
                                       daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.request("GET", "/health")[0] == 200:
                return
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("server not ready: " + "".join(self.stderr))

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            return res.status, dict(res.getheaders()), res.read()
        finally:
            conn.close()

    def score(self, body, content_type="image/jpeg", headers=None):
        status, head, data = self.request("POST", "/v1/score", body,
                                          {"Content-Type": content_type, **(headers or {})})
        return status, head, json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stderr.close()


def multipart(parts):
    """(body, content type) of a multipart/form-data form of (field, filename, bytes)."""
    boundary = uuid.uuid4().hex
    body = b""
    for field, filename, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 ).encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, "multipart/form-data; boundary=" + boundary


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-serve-")
        cls.model = SMALL_MODEL
        r = subprocess.run([MUSIQ, "score", "--weights", cls.model, "--device", "cpu", "-q",
                            *IMAGES], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        cls.expected = {os.path.basename(x["path"]): x for x in map(json.loads, r.stdout.splitlines())}
        # Room for test_bounded_load's 16 clients and the connections still closing, and a
        # read timeout that a slow machine (ASan, under load) does not reach between a
        # client's connect and its request.
        cls.server = Server(cls.model, "--max-connections", "64", "--read-timeout", "5",
                            "--max-body-bytes", "2000000", "--max-wait-ms", "20")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp)

    def check_record(self, record, name):
        expected = self.expected[name]
        for field in ("score", "width", "height", "tokens"):
            self.assertEqual(record[field], expected[field], (name, field, record))
        self.assertEqual(record["precision"], "fp32")
        self.assertIn("ms", record)

    def assert_still_serving(self):
        status, _, record = self.server.score(read(IMAGES[0]))
        self.assertEqual(status, 200, record)
        self.check_record(record, os.path.basename(IMAGES[0]))

    def test_health_and_models(self):
        status, _, body = self.server.request("GET", "/health")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        status, _, body = self.server.request("GET", "/v1/models")
        models = json.loads(body)["models"]
        self.assertEqual(status, 200)
        self.assertEqual((models[0]["variant"], models[0]["device"], models[0]["random_weights"]),
                         ("random", "cpu", True))

    def test_raw_bodies_score_as_musiq_score(self):
        for path in IMAGES:
            content_type = "image/png" if path.endswith(".png") else "image/jpeg"
            status, head, record = self.server.score(read(path), content_type)
            self.assertEqual(status, 200, record)
            self.assertEqual(head["Content-Type"], "application/json")
            self.check_record(record, os.path.basename(path))

    def test_concurrent_clients_share_passes_and_score_exactly(self):
        jobs = [IMAGES[i % len(IMAGES)] for i in range(24)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda p: (p, self.server.score(read(p), "image/*")), jobs))
        for path, (status, _, record) in results:
            self.assertEqual(status, 200, record)
            self.check_record(record, os.path.basename(path))
        self.assertGreater(max(r["batch_images"] for _, (_, _, r) in results), 1)

    def test_multipart_gives_one_record_per_image(self):
        body, content_type = multipart([("image", "a.jpg", read(IMAGES[0])),
                                        ("image", "broken.jpg", BROKEN),
                                        ("image", "c.png", read(IMAGES[2]))])
        status, _, out = self.server.score(body, content_type)
        self.assertEqual(status, 200, out)
        results = out["results"]
        self.assertEqual([r["filename"] for r in results], ["a.jpg", "broken.jpg", "c.png"])
        self.check_record(results[0], os.path.basename(IMAGES[0]))
        self.check_record(results[2], os.path.basename(IMAGES[2]))
        self.assertIn("broken.jpg: ", results[1]["error"])
        self.assertNotIn("score", results[1])

    def test_curl_raw_and_form(self):
        if not shutil.which("curl"):
            self.skipTest("no curl")
        url = f"http://{HOST}:{self.server.port}/v1/score"
        raw = subprocess.run(["curl", "-sS", "-H", "Content-Type: image/jpeg", "--data-binary",
                              "@" + IMAGES[1], url], capture_output=True, text=True, timeout=60)
        self.check_record(json.loads(raw.stdout), os.path.basename(IMAGES[1]))
        form = subprocess.run(["curl", "-sS", "-F", "image=@" + IMAGES[3], url],
                              capture_output=True, text=True, timeout=60)
        self.check_record(json.loads(form.stdout)["results"][0], os.path.basename(IMAGES[3]))
        # Over a megabyte curl asks "Expect: 100-continue": refused before the body is sent.
        big = os.path.join(self.tmp, "big.jpg")
        with open(big, "wb") as f:
            f.write(read(IMAGES[0]) + b"\0" * 3000000)
        over = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                               "Content-Type: image/jpeg", "--data-binary", "@" + big, url],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(over.stdout, "413", over.stderr)

    def test_bad_image_is_422_with_one_line(self):
        status, _, out = self.server.score(BROKEN)
        self.assertEqual(status, 422)
        self.assertTrue(out["error"].startswith("request body: "), out)
        self.assertEqual(len(out["error"].splitlines()), 1)
        status, _, out = self.server.score(b"")
        self.assertEqual(status, 400)
        self.assert_still_serving()

    def test_too_costly_image_is_422(self):
        server = Server(self.model, "--max-tokens", "300")
        try:
            status, _, out = server.score(read(IMAGES[1]))
            self.assertEqual(status, 422)
            self.assertIn("too costly", out["error"])
        finally:
            server.stop()

    def test_wrong_content_types_are_415(self):
        for content_type in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
            status, _, out = self.server.score(read(IMAGES[0]), content_type)
            self.assertEqual(status, 415, content_type)
            self.assertIn("not accepted", out["error"])
        self.assert_still_serving()

    def raw_exchange(self, data, timeout=10):
        """What the server answers to `data` sent on a plain socket (until it closes)."""
        with socket.create_connection((HOST, self.server.port), timeout=timeout) as s:
            s.sendall(data)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return reply
                reply += chunk

    def test_body_over_limit_is_413_before_it_is_sent(self):
        start = time.monotonic()
        reply = self.raw_exchange(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                                  b"Content-Length: 1000000000\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:100])
        self.assertLess(time.monotonic() - start, 10)  # closed by --read-timeout 5 at the latest
        self.assertIn(b"--max-body-bytes", reply)
        # A body of unknown length (chunked) is refused before it is read.
        chunk = b"x" * 1000000
        body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        reply = self.raw_exchange(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + body)
        self.assertTrue(reply.startswith(b"HTTP/1.1 411"), reply[:100])
        self.assert_still_serving()

    def test_malformed_multipart_is_400(self):
        reply = self.raw_exchange(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                  b"multipart/form-data; boundary=zzz\r\nContent-Length: 20\r\n"
                                  b"Connection: close\r\n\r\nthis is no multipart")
        self.assertTrue(reply.startswith(b"HTTP/1.1 400"), reply[:100])
        self.assert_still_serving()

    def test_slow_client_is_cut_off_by_the_read_timeout(self):
        start = time.monotonic()
        with socket.create_connection((HOST, self.server.port), timeout=20) as s:
            s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            while s.recv(65536):
                pass
        self.assertLess(time.monotonic() - start, 15)  # --read-timeout 5
        self.assert_still_serving()

    def test_disconnect_mid_body(self):
        for _ in range(3):
            with socket.create_connection((HOST, self.server.port), timeout=10) as s:
                s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                          b"Content-Length: 100000\r\n\r\n" + read(IMAGES[0])[:1000])
        # Gone while its image waits for the model: the answer has nowhere to go.
        body = read(IMAGES[1])
        for _ in range(3):
            with socket.create_connection((HOST, self.server.port), timeout=10) as s:
                s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assert_still_serving()

    def test_too_many_connections_is_503_with_retry_after(self):
        server = Server(self.model, "--max-connections", "2", "--read-timeout", "2")
        try:
            idle = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(2)]
            try:
                # The server counts a connection once it has accepted it: on a busy machine
                # that may take a moment, so a third one may be served until then.
                deadline = time.monotonic() + 10
                while True:
                    with socket.create_connection((HOST, server.port), timeout=10) as s:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        reply = b""
                        while chunk := s.recv(65536):  # both answers close the connection
                            reply += chunk
                    if reply.startswith(b"HTTP/1.1 503") or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                self.assertTrue(reply.startswith(b"HTTP/1.1 503"), reply[:100])
                self.assertIn(b"Retry-After: 1", reply)
                self.assertIn(b"too many connections", reply)
            finally:
                for s in idle:
                    s.close()
            deadline = time.monotonic() + 10
            while server.request("GET", "/health")[0] != 200:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
        finally:
            server.stop()

    def test_metrics(self):
        self.server.score(read(IMAGES[0]))
        self.server.score(BROKEN)
        status, head, body = self.server.request("GET", "/metrics")
        text = body.decode()
        self.assertEqual(status, 200)
        self.assertTrue(head["Content-Type"].startswith("text/plain"))
        for line in ('musiq_requests_total{route="/v1/score",status="200"}',
                     'musiq_errors_total{kind="bad_image"}', "musiq_queue_depth 0",
                     'musiq_batch_images_bucket{le="+Inf"}',
                     'musiq_request_duration_seconds_bucket{le="0.005"}'):
            self.assertIn(line, text)
        images = int(re.search(r"^musiq_images_total (\d+)$", text, re.M).group(1))
        tokens = int(re.search(r"^musiq_tokens_total (\d+)$", text, re.M).group(1))
        self.assertGreaterEqual(images, 1)
        self.assertGreaterEqual(tokens, images * 2)

    def test_api_key(self):
        env = dict(os.environ, MUSIQ_API_KEY="s3cret-key")
        server = Server(self.model, env=env)
        try:
            self.assertEqual(server.request("GET", "/health")[0], 200)  # open to probes
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-ke"}):
                status, head, out = server.score(read(IMAGES[0]), headers=headers)
                self.assertEqual(status, 401, headers)
                self.assertEqual(head.get("WWW-Authenticate"), "Bearer")
            self.assertEqual(server.request("GET", "/metrics")[0], 401)
            for headers in ({"Authorization": "Bearer s3cret-key"}, {"X-API-Key": "s3cret-key"}):
                status, _, out = server.score(read(IMAGES[0]), headers=headers)
                self.assertEqual(status, 200, out)
        finally:
            server.stop()

    def test_sigterm_finishes_the_queue_and_exits_0(self):
        server = Server(self.model, "--max-wait-ms", "10000")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            # The smallest photo six times: scored in well under a second even under ASan on
            # a busy machine, so the stop's time tells a run at once from the 10 s wait.
            photos = [IMAGES[0]] * 6
            futures = [pool.submit(server.score, read(p)) for p in photos]
            deadline = time.monotonic() + 30
            while "musiq_queue_depth 6\n" not in server.request("GET", "/metrics")[2].decode():
                self.assertLess(time.monotonic(), deadline, "requests never queued")
                time.sleep(0.05)
            # All six wait for company (up to 10 s); the stop runs them at once.
            start = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            results = [f.result(timeout=60) for f in futures]
        self.assertEqual(server.proc.wait(timeout=30), 0)
        self.assertLess(time.monotonic() - start, 9)
        for (status, _, record), path in zip(results, photos):
            self.assertEqual(status, 200, record)
            self.check_record(record, os.path.basename(path))
        with self.assertRaises(OSError):
            socket.create_connection((HOST, server.port), timeout=2).close()
        server.stop()
        self.assertIn("musiq: stopped\n", server.stderr)

    def test_weights_that_cannot_load_end_the_server(self):
        r = subprocess.run([MUSIQ, "serve", "--weights", os.path.join(self.tmp, "missing.h5"),
                            "--host", HOST, "--port", "0"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("missing.h5: ", r.stderr.splitlines()[-1])

    def test_bounded_load(self):
        """16 clients, 5 requests each, within a fixed time."""
        deadline = time.monotonic() + 300

        def client(k):
            out = []
            for i in range(5):
                self.assertLess(time.monotonic(), deadline)
                path = IMAGES[(k + i) % len(IMAGES)]
                out.append((path, self.server.score(read(path))))
            return out

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            done = [r for rs in pool.map(client, range(16)) for r in rs]
        self.assertEqual(len(done), 80)
        for path, (status, _, record) in done:
            self.assertEqual(status, 200, record)
            self.check_record(record, os.path.basename(path))


if __name__ == "__main__":
    unittest.main()
