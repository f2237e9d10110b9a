"""`musiq serve`: the scoring service, used from Python (documentation only).

The server is the `musiq` command line's, not a second one in Python: one process loads
the model once, and requests from many clients share packed forward passes (dynamic
batching), which a Python server calling `Scorer.score` per request could not do.

Start it (loopback only by default; for other hosts set MUSIQ_API_KEY and put TLS in a
reverse proxy in front)::

    musiq serve --model koniq --host 127.0.0.1 --port 8080

Score an image's bytes, with nothing but the standard library::

    import json, urllib.request
    with open("photo.jpg", "rb") as f:
        req = urllib.request.Request("http://127.0.0.1:8080/v1/score", data=f.read(),
                                     headers={"Content-Type": "image/jpeg"})
    record = json.load(urllib.request.urlopen(req))
    record["score"], record["width"], record["height"], record["tokens"]

or several in one request, as multipart/form-data (with `requests`)::

    files = [("image", open(p, "rb")) for p in paths]
    for r in requests.post("http://127.0.0.1:8080/v1/score", files=files).json()["results"]:
        print(r.get("filename"), r.get("score"), r.get("error"))

Statuses: 200 (a record; for a form, one record or error per image), 400 (empty body,
malformed request or form), 401 (API key missing or wrong), 413 (body over
--max-body-bytes), 415 (not image/*, application/octet-stream or multipart/form-data),
422 (the image cannot be decoded or is over --max-pixels / --max-tokens; "error" holds
the one-line message `musiq.Error` would), 503 with Retry-After (too many connections,
loading, or stopping). GET /health, GET /v1/models and GET /metrics (Prometheus) complete
the API; docs/usage.md, "Serving", has the options, bench/RESULTS.md the measured throughput.
Scores equal `musiq score` and `Scorer.score` on the same bytes exactly.
"""

__all__: list = []
