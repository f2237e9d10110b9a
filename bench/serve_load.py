#!/usr/bin/python3
"""What dynamic batching buys `musiq serve`: images/s and latency under concurrent clients.

    python3 bench/serve_load.py --musiq build/musiq --weights koniq.h5 [--seconds 30]

Starts `musiq serve` on a free port of 127.0.0.1 once per setting (--waits: --max-wait-ms
5, the default, and 0: no waiting for company), and for 1, 4 and 16 concurrent clients posts the
sample photos (samples/*.png, *.jpg, round robin) for --seconds each, after one warm-up
request per client. Prints a Markdown table: images/s, p50 and p99 latency, and the mean
images per forward pass (from /metrics). Stops by itself.
"""
import argparse
import concurrent.futures
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"


def start(args, max_wait_ms):
    proc = subprocess.Popen([args.musiq, "serve", "--weights", args.weights, "--device", args.device,
                             "--host", HOST, "--port", "0", "--max-wait-ms", str(max_wait_ms),
                             "--max-connections", "64"], stderr=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)$", proc.stderr.readline().strip()).group(1))
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    while True:
        try:
            if get(port, "/health")[0] == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)


def get(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    conn.request("GET", path)
    res = conn.getresponse()
    return res.status, res.read().decode()


def metric(port, name):
    text = get(port, "/metrics")[1]
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def client(port, photos, first, until, latencies):
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    i = first
    while time.monotonic() < until:
        body = photos[i % len(photos)]
        start = time.monotonic()
        conn.request("POST", "/v1/score", body=body, headers={"Content-Type": "image/*"})
        res = conn.getresponse()
        record = json.loads(res.read())
        if res.status != 200:
            raise RuntimeError(f"status {res.status}: {record}")
        latencies.append(time.monotonic() - start)
        i += 1
    conn.close()


def measure(port, photos, clients, seconds):
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:  # warm-up
        list(pool.map(lambda k: client(port, photos, k, 0, []), range(clients)))
    passes0, images0 = metric(port, "musiq_passes_total"), metric(port, "musiq_images_total")
    lists = [[] for _ in range(clients)]
    start = time.monotonic()
    until = start + seconds
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, port, photos, k, until, lists[k]) for k in range(clients)]:
            f.result()
    elapsed = time.monotonic() - start
    latencies = sorted(x for xs in lists for x in xs)
    passes = metric(port, "musiq_passes_total") - passes0
    images = metric(port, "musiq_images_total") - images0
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return (len(latencies) / elapsed, pick(0.5) * 1000, pick(0.99) * 1000,
            images / passes if passes else 0.0, len(latencies))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--musiq", default=os.path.join(ROOT, "build", "musiq"))
    parser.add_argument("--weights", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--waits", default="5,0", help="--max-wait-ms settings, in this order")
    args = parser.parse_args()
    photos = []
    for path in sorted(glob.glob(os.path.join(ROOT, "samples", "*.png")) +
                       glob.glob(os.path.join(ROOT, "samples", "*.jpg"))):
        with open(path, "rb") as f:
            photos.append(f.read())
    print("| --max-wait-ms | clients | images/s | p50 ms | p99 ms | images per pass | requests |")
    print("|---|---|---|---|---|---|---|")
    for max_wait_ms in map(int, args.waits.split(",")):
        proc, port = start(args, max_wait_ms)
        try:
            for clients in map(int, args.clients.split(",")):
                rate, p50, p99, per_pass, n = measure(port, photos, clients, args.seconds)
                print(f"| {max_wait_ms} | {clients} | {rate:.2f} | {p50:.0f} | {p99:.0f} | "
                      f"{per_pass:.2f} | {n} |", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
