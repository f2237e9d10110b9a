#!/usr/bin/python3
"""tools/musiq-fetch against a local HTTP server (127.0.0.1 only) and with no server.

  /usr/bin/python3 tests/python/musiq_fetch_tests.py      (ctest: python.musiq_fetch)

The server serves a fake official checkpoint (official config, random values, the
flax optimizer layout) with HTTP Range support and can drop the connection halfway,
so the test sees an interrupted download resumed with a Range request, the export,
the check, and the install into $XDG_CACHE_HOME/musiq/.
"""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tools")
FETCH = os.path.join(TOOLS, "musiq-fetch")
sys.dont_write_bytecode = True
sys.path.insert(0, TOOLS)
import musiq_params as mp  # noqa: E402


class Server:
    """Serves {name: bytes} over HTTP on 127.0.0.1 with Range support. `cut_after`
    bytes into the first full-body response it closes the connection."""

    def __init__(self, files, cut_after=None):
        self.files, self.cut_after, self.requests = files, cut_after, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                outer.requests.append((name, self.headers.get("Range")))
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(body) and rng:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                data = body[start:]
                if outer.cut_after is not None and not rng:
                    data, outer.cut_after = data[:outer.cut_after], None
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


class FetchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(11)
        cls.params = {k: rng.standard_normal(s, dtype=np.float32) * 0.05
                      for k, s in mp.expected_params(mp.official_config("spaq")).items()}
        tmp = tempfile.mkdtemp(prefix="musiq-fetch-src-")
        path = os.path.join(tmp, "spaq_ckpt.npz")
        np.savez(path, **{"opt/target/" + k: v for k, v in cls.params.items()},
                 **{"opt/state/step": np.array(7, np.int32)})
        with open(path, "rb") as f:
            cls.npz = f.read()
        shutil.rmtree(tmp)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="musiq-fetch-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.cache = os.path.join(self.dir, "musiq")

    def fetch(self, url, *args):
        env = dict(os.environ, XDG_CACHE_HOME=self.dir, MUSIQ_FETCH_URL=url)
        return subprocess.run([sys.executable, FETCH, *args], capture_output=True, text=True,
                              env=env, timeout=600)

    def test_offline_one_line(self):
        r = self.fetch(closed_port_url(), "koniq")
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("musiq-fetch: koniq: cannot download http://127.0.0.1:", lines[0])
        self.assertIn("koniq_ckpt.npz", lines[0])
        self.assertIn("offline?", lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.cache, "koniq.h5")))

    def test_all_stops_at_the_first_failure(self):
        r = self.fetch(closed_port_url(), "all")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_http_error(self):
        with Server({}) as server:
            r = self.fetch(server.url, "ava")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 404", r.stderr)

    def test_interrupted_download_resumes_and_installs(self):
        half = len(self.npz) // 2
        with Server({"spaq_ckpt.npz": self.npz}, cut_after=half) as server:
            r = self.fetch(server.url, "spaq")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("run the same command again to resume", r.stderr)
            part = os.path.join(self.cache, "spaq_ckpt.npz.part")
            self.assertEqual(os.path.getsize(part), half)

            r = self.fetch(server.url, "spaq")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(server.requests, [("spaq_ckpt.npz", None),
                                               ("spaq_ckpt.npz", f"bytes={half}-")])
        out = os.path.join(self.cache, "spaq.h5")
        self.assertIn(f"installed {out}", r.stdout)
        self.assertEqual(sorted(os.listdir(self.cache)), ["spaq.h5"])  # npz, .part gone
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["variant"], "spaq")
            for k, v in self.params.items():
                self.assertEqual(f[k][()].tobytes(), v.tobytes(), k)

        r = self.fetch(closed_port_url(), "spaq")  # installed: no network needed
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already installed", r.stdout)

    def test_keep_npz_and_complete_part(self):
        # A .part that is already complete: the server answers 416 and nothing is
        # fetched again.
        os.makedirs(self.cache)
        with open(os.path.join(self.cache, "spaq_ckpt.npz.part"), "wb") as f:
            f.write(self.npz)
        with Server({"spaq_ckpt.npz": self.npz}) as server:
            r = self.fetch(server.url, "spaq", "--keep-npz")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.cache)), ["spaq.h5", "spaq_ckpt.npz"])

    def test_not_an_npz(self):
        with Server({"paq2piq_ckpt.npz": b"<html>not found</html>"}) as server:
            r = self.fetch(server.url, "paq2piq")
        self.assertEqual(r.returncode, 1)
        self.assertIn("did not give an .npz file", r.stderr)
        self.assertEqual(os.listdir(self.cache), [])


if __name__ == "__main__":
    unittest.main()
