#!/usr/bin/python3
"""musiq score against what a hostile but realistic user tries: file names that are not
UTF-8, failed writes, truncated and corrupt images, costly headers, signals, foreign
output files, resume from elsewhere, bad options and weights, concurrent runs.

Run by ctest with MUSIQ_BIN set to the built binary; uses a small random model.
"""
import csv
import fcntl
import io
import json
import os
import pathlib
import pwd
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest
import zlib

import h5py
import numpy as np
from PIL import Image

from fixture_models import SMALL_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ = os.path.abspath(os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq")))
BAD_NAME = b"caf\xe9-\xff.png"  # Latin-1 bytes: not UTF-8


def run(*args, env=None, cwd=None, stdout=None):
    """Text output (bytes that are not UTF-8 kept as surrogates); with `stdout` given,
    that goes there and stderr is bytes."""
    if stdout is not None:
        return subprocess.run([MUSIQ, *args], stdout=stdout, stderr=subprocess.PIPE,
                              env=env, cwd=cwd, timeout=600)
    return subprocess.run([MUSIQ, *args], capture_output=True, text=True,
                          errors="surrogateescape", env=env, cwd=cwd, timeout=600)


def records(out):
    text = out.decode() if isinstance(out, bytes) else out
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def photo(size=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize(size, Image.BILINEAR)


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def psd(im):
    """A minimal uncompressed PSD (as fuzz/make-seeds writes one)."""
    w, h = im.size
    planes = [np.asarray(im)[..., c].tobytes() for c in range(3)]
    return (b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) +
            struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"".join(planes))


def jpeg_with_sof_size(jpeg, width, height):
    sof = jpeg.find(b"\xff\xc0")
    return jpeg[:sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


class HostileInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-hostile-")
        cls.model = SMALL_MODEL
        cls.photos = os.path.join(cls.tmp, "photos")
        os.makedirs(cls.photos)
        for name in ("chelsea.png", "rocket.jpg"):
            shutil.copy(os.path.join(ROOT, "samples", name), cls.photos)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def score(self, *args, **kw):
        return run("score", "--weights", self.model, "-q", *args, **kw)

    def write(self, name, data):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def error_of(self, path, *args):
        r = self.score(path, *args)
        self.assertEqual(r.returncode, 1, r.stderr)
        rec = records(r.stdout)
        self.assertEqual(len(rec), 1)
        self.assertIn("error", rec[0], rec[0])
        return rec[0]["error"]

    # 1. Names that are not UTF-8: written losslessly, resumable, in every format.
    def test_non_utf8_names(self):
        d = self.path("latin1").encode()
        os.makedirs(d, exist_ok=True)
        bad = os.path.join(d, BAD_NAME)
        shutil.copy(os.path.join(ROOT, "samples", "chelsea.png"), bad)
        shutil.copy(os.path.join(ROOT, "samples", "rocket.jpg"), os.path.join(d, b"ok.jpg"))
        r = self.score(d.decode())
        self.assertEqual(r.returncode, 0, r.stderr)
        paths = [os.fsencode(x["path"]) for x in records(r.stdout)]
        self.assertIn(bad, paths)
        listing = self.write("latin1-list.txt", bad + b"\n")
        r = self.score("--files-from", listing)
        self.assertEqual([os.fsencode(x["path"]) for x in records(r.stdout)], [bad])
        for fmt in ("json", "csv", "table"):
            r = self.score(d.decode(), "--format", fmt, stdout=subprocess.PIPE)
            self.assertEqual(r.returncode, 0, (fmt, r.stderr))
            self.assertIn(b"caf", r.stdout)
        out = self.path("latin1.json")
        r = self.score(d.decode(), "--format", "json", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(len(json.load(f)), 2)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".tmp-" in n], [])
        out = self.path("latin1.jsonl")
        self.score(d.decode(), "-o", out)
        r = self.score(d.decode(), "-o", out, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(len(f.readlines()), 2)  # nothing scored twice

    # 2. A failed write is exit 2 with the reason, in every format.
    def test_failed_writes_are_errors(self):
        for fmt in ("jsonl", "json", "csv", "table"):
            with open("/dev/full", "wb") as full:
                r = run("score", "--weights", self.model, "-q", self.photos, "--format", fmt,
                        stdout=full)
            self.assertEqual(r.returncode, 2, fmt)
            self.assertIn(b"No space left on device", r.stderr, fmt)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    # 3. Truncated files in every format stb_image reads for us are errors.
    def test_truncated_images_in_every_format(self):
        im = photo((61, 47))
        rgba = im.convert("RGBA")
        formats = {
            "bmp": ("BMP", encode(im, "BMP")),
            "palette.bmp": ("BMP", encode(im.quantize(64), "BMP")),
            "gif": ("GIF", encode(im.quantize(32), "GIF")),
            "psd": ("PSD", psd(im)),
            "rle.tga": ("TGA", encode(rgba, "TGA", compression="tga_rle")),
        }
        for name, (kind, data) in formats.items():
            whole = self.write(os.path.join("trunc", "whole." + name), data)
            r = self.score(whole)
            self.assertEqual(r.returncode, 0, (name, r.stdout, r.stderr))
            cut = self.write(os.path.join("trunc", "cut." + name), data[: len(data) * 6 // 10])
            self.assertIn("truncated " + kind, self.error_of(cut), name)
        # A BMP header declaring 1000x1000 over 36 KB of pixel data.
        big = encode(photo((1000, 1000)), "BMP")
        cut = self.write(os.path.join("trunc", "declared.bmp"), big[:36 * 1024])
        self.assertIn("truncated BMP", self.error_of(cut))

    # 4. Corrupt data that libjpeg fills in is scored with a warning (as TensorFlow
    # does), refused with --strict; a header's cost is checked before decoding.
    def test_jpeg_warning_and_strict(self):
        with open(os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"), "rb") as f:
            jpeg = f.read()
        # The entropy-coded data cut short, then the end-of-image marker: libjpeg warns
        # "premature end of data segment" and fills the rest.
        sos = jpeg.find(b"\xff\xda")
        corrupt = self.write("corrupt.jpg", jpeg[: sos + (len(jpeg) - sos) // 2] + b"\xff\xd9")
        r = self.score(corrupt)
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = records(r.stdout)[0]
        self.assertIn("score", rec)
        self.assertIn("premature end of data segment", rec["warning"])
        r = self.score(corrupt, "--strict")
        self.assertEqual(r.returncode, 1)
        self.assertIn("(refused by strict mode)", records(r.stdout)[0]["error"])
        clean = self.score(os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"), "--strict")
        self.assertEqual(clean.returncode, 0)
        self.assertNotIn("warning", records(clean.stdout)[0])

    def test_costly_header_is_refused_before_decoding(self):
        with open(os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"), "rb") as f:
            jpeg = f.read()
        huge = self.write("huge-sof.jpg", jpeg_with_sof_size(jpeg, 12000, 11000))
        start = time.monotonic()
        error = self.error_of(huge)
        self.assertLess(time.monotonic() - start, 30)
        self.assertIn("too costly", error)
        self.assertIn("--max-tokens", error)
        default_limit = int(error.rsplit("limit of ", 1)[1].split()[0])
        # A 50-megapixel phone photo (8160x6120) fits under the default limit.
        phone = self.write("phone-sof.jpg", jpeg_with_sof_size(jpeg, 8160, 6120))
        error = self.error_of(phone, "--max-tokens", "1000")
        tokens = int(error.split(" makes ")[1].split()[0])
        self.assertEqual(tokens, 49111)
        self.assertLess(tokens, default_limit)

    # 5. Signals: the first stops after the images in flight (one packed batch), a second
    # (or SIGTERM) at once.
    def start_run(self, *args, model=None):
        p = subprocess.Popen([MUSIQ, "score", "--weights", model or self.model, "-q", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)  # a run that failed to stop
        return p

    def big_images(self, count):
        d = self.path("big")
        os.makedirs(d, exist_ok=True)
        photo((3200, 2400), seed=9).save(os.path.join(d, "0.png"))
        for k in range(1, count):
            shutil.copy(os.path.join(d, "0.png"), os.path.join(d, "%d.png" % k))
        return d

    def full_model(self):
        """A full-size random model: a 3200x2400 photo takes it seconds on any CPU."""
        path = self.path("full.h5")
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "musiq-make-test-model"),
                            path, "--seed", "3", "--size", "full"], check=True,
                           stdout=subprocess.DEVNULL)
        return path

    def test_second_signal_or_sigterm_stops_at_once_with_valid_output(self):
        big = self.big_images(2)
        for signals, code in (((signal.SIGINT, signal.SIGINT), 130), ((signal.SIGTERM,), 143)):
            out = self.path("stopped.json")
            p = self.start_run(big, "--format", "json", "-o", out, "--overwrite", "--device",
                               "cpu", model=self.full_model())
            time.sleep(2)  # the first image is being decoded or scored (seconds)
            for s in signals[:-1]:
                p.send_signal(s)
                time.sleep(0.3)
            self.assertIsNone(p.poll(), "still scoring its first image")
            sent = time.monotonic()
            p.send_signal(signals[-1])
            _, err = p.communicate(timeout=60)
            self.assertLess(time.monotonic() - sent, 1.0, err)
            self.assertEqual(p.returncode, code, err)
            with open(out) as f:
                self.assertEqual(json.load(f), [])
            self.assertIn(b"interrupted after 0 of 2 images", err)
            self.assertIn(b"--resume needs --format jsonl or csv", err)

    def test_first_signal_stops_after_the_images_in_flight(self):
        # 20 images, batches of 8: the first batch's records are out when the signal comes,
        # the second batch may be in flight; the third never starts.
        d = self.path("many")
        os.makedirs(d, exist_ok=True)
        for k in range(20):
            photo((640, 480), seed=k).save(os.path.join(d, "%02d.png" % k))
        out = self.path("first-signal.jsonl")
        p = self.start_run(d, "-o", out)
        while p.poll() is None and not (os.path.exists(out) and os.path.getsize(out)):
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)  # once the first record is out
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn(b"stopping after the images in flight", err)
        self.assertIn(b"continue with --resume", err)
        with open(out) as f:
            first = records(f.read())
        self.assertLessEqual(len(first), 16)
        r = self.score(d, "-o", out, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(len({x["path"] for x in records(f.read())}), 20)

    # 6. --resume onto a file that is not ours is refused, and the file left alone.
    def test_resume_refuses_foreign_csv(self):
        for content in (b"name,size\nx.jpg,3\n", b"word\n", b"word"):
            out = self.write("foreign.csv", content)
            r = self.score(self.photos, "--format", "csv", "-o", out, "--resume")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("not a musiq CSV file", r.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), content)

    # 7. --resume recognises the images however the paths are written.
    def test_resume_matches_canonical_paths(self):
        out = self.path("canonical.csv")
        first = self.score("photos", "--format", "csv", "-o", out, cwd=self.tmp)
        self.assertEqual(first.returncode, 0, first.stderr)
        elsewhere = self.path("elsewhere")
        os.makedirs(elsewhere, exist_ok=True)
        os.symlink(self.photos, os.path.join(elsewhere, "link"))
        for spelling, cwd in (("photos/", self.tmp), ("./photos", self.tmp),
                              (self.photos, elsewhere), ("link", elsewhere),
                              ("../photos", elsewhere)):
            r = run("score", "--weights", self.model, spelling, "--format", "csv", "-o", out,
                    "--resume", cwd=cwd)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("resuming: 2 images already in", r.stderr, spelling)
        with open(out) as f:
            self.assertEqual(len(list(csv.DictReader(f))), 2)

    def test_resume_recognises_a_name_with_a_newline_in_csv(self):
        d = self.path("newline")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "samples", "chelsea.png"), os.path.join(d, "two\nlines, \"q\".png"))
        out = self.path("newline.csv")
        self.assertEqual(self.score(d, "--format", "csv", "-o", out).returncode, 0)
        r = run("score", "--weights", self.model, d, "--format", "csv", "-o", out, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming: 1 images already in", r.stderr)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([os.path.basename(x["path"]) for x in rows], ["two\nlines, \"q\".png"])

    # 8. Valid images that were refused or mislabelled.
    def test_top_down_bmp_scores_like_bottom_up(self):
        im = photo((50, 30))
        data = bytearray(encode(im, "BMP"))
        offset, = struct.unpack_from("<I", data, 10)
        width, height = struct.unpack_from("<ii", data, 18)
        stride = (width * 3 + 3) // 4 * 4
        rows = [data[offset + y * stride: offset + (y + 1) * stride] for y in range(height)]
        struct.pack_into("<i", data, 22, -height)
        data[offset:] = b"".join(reversed(rows))
        up = self.write("bottom-up.bmp", encode(im, "BMP"))
        down = self.write("top-down.bmp", bytes(data))
        r = self.score(up, down)
        self.assertEqual(r.returncode, 0, r.stderr)
        a, b = records(r.stdout)
        self.assertEqual((b["width"], b["height"]), (50, 30))
        self.assertEqual(a["score"], b["score"])

    def test_png_size_and_crc(self):
        data = encode(photo(), "PNG")
        ihdr = bytearray(data[16:29])
        struct.pack_into(">II", ihdr, 0, 20000, 20000)
        huge = self.write("huge.png", data[:8] + png_chunk(b"IHDR", bytes(ihdr)) + data[33:])
        self.assertIn("too many pixels", self.error_of(huge))
        idat = data.find(b"IDAT")
        damaged = bytearray(data)
        damaged[idat + 6] ^= 0x01
        self.assertIn("damaged PNG", self.error_of(self.write("crc.png", bytes(damaged))))

    # 9. Smaller ones.
    def test_non_finite_score_is_an_error_record(self):
        broken = self.path("huge-weights.h5")
        shutil.copy(self.model, broken)
        with h5py.File(broken, "r+") as f:
            heads = []
            f.visititems(lambda n, o: heads.append(n) if isinstance(o, h5py.Dataset)
                         and n.startswith("head") else None)
            for name in heads:
                f[name][...] = np.full(f[name].shape, 3e38, f[name].dtype)
        r = run("score", "--weights", broken, "-q", os.path.join(self.photos, "chelsea.png"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("non-finite score", records(r.stdout)[0]["error"])

    def test_option_and_input_misuse(self):
        empty_dir = self.path("empty")
        os.makedirs(empty_dir, exist_ok=True)
        text_dir = self.path("texts")
        os.makedirs(text_dir, exist_ok=True)
        self.write("texts/a.txt", b"x")
        empty_list = self.write("empty-list.txt", b"")
        for args, message in (
                (("--files-from", empty_dir), "not a directory"),
                (("--files-from", empty_list), "no images found"),
                ((empty_dir,), "no images found"),
                ((text_dir,), "no images found (1 files without an image extension)"),
                ((self.photos, "--max-pixels", "0"), "not a whole number from 1 up"),
                ((self.photos, "--max-tokens", "-5"), "not a whole number from 1 up"),
                ((self.photos, "--model", "bogus"), "unknown model 'bogus'"),
                ((self.photos, "-o", self.photos), "is a directory"),
                ((self.photos, "-o", self.path("no", "such", "dir.jsonl")),
                 "No such file or directory"),
                ((self.photos, "--format", "json", "-o", self.path("no", "such", "dir.json")),
                 "dir.json: cannot open for writing: No such file or directory"),
                ((self.photos, "-o", self.path("x.jsonl"), "--resume", "--overwrite"),
                 "excludes"),
                ((self.photos, "--model", "koniq,spaq,koniq"), "--model: 'koniq' named twice"),
                (("",), "an empty path (\"\") names no file"),
                ((self.photos, "--shard", "0/99999999999"), "K and N must be below 2147483648")):
            r = self.score(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr, args)
            self.assertLess(len(r.stderr), 300, r.stderr)
        r = run("bench", "--runs", "0", "--weights", self.model)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--runs: Value 0 not in range 1 to 1000000", r.stderr)
        loop = self.path("loop.png")
        if not os.path.lexists(loop):
            os.symlink(loop, loop)
        self.assertIn("loop.png: cannot open file for reading (Too many levels of symbolic links)",
                      self.error_of(loop))
        listing = self.write("nul-list.txt", os.path.join(self.photos, "chelsea.png").encode()
                             + b"\0junk\n")
        r = self.score("--files-from", listing)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("chelsea.png\\0junk: a path cannot contain a NUL byte",
                      records(r.stdout)[0]["error"])
        newline = self.write("two\nlines.png", encode(photo(), "PNG"))
        r = self.score(newline, "--format", "table")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2, r.stdout)  # header and one row
        self.assertIn("two\\nlines.png", r.stdout)

    def test_weights_variant_must_match(self):
        ava1 = self.path("ava-one-class.h5")
        shutil.copy(self.model, ava1)
        with h5py.File(ava1, "r+") as f:
            f.attrs["variant"] = "ava"
        r = run("score", "--weights", ava1, os.path.join(self.photos, "chelsea.png"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("a ava model has 10 output classes, this file 1", r.stderr)
        spaq = self.path("spaq.h5")
        shutil.copy(self.model, spaq)
        with h5py.File(spaq, "r+") as f:
            f.attrs["variant"] = "spaq"
        r = run("score", "--weights", spaq, "--model", "koniq", os.path.join(self.photos, "chelsea.png"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("holds the spaq model, not koniq", r.stderr)
        # The lookup by name checks the file it finds as --weights does.
        weights_dir = self.path("weights-dir")
        os.makedirs(weights_dir, exist_ok=True)
        shutil.copy(spaq, os.path.join(weights_dir, "ava.h5"))
        env = dict(os.environ, MUSIQ_WEIGHTS_DIR=weights_dir)
        r = run("score", "--model", "ava", os.path.join(self.photos, "chelsea.png"), env=env)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("ava.h5: holds the spaq model, not ava", r.stderr)
        self.assertEqual(r.stdout, "")
        r = run("serve", "--model", "ava", "--host", "127.0.0.1", "--port", "0", env=env)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("ava.h5: holds the spaq model, not ava", r.stderr.splitlines()[-1])

    def test_weights_lookup_without_home_uses_the_password_database(self):
        home_cache = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".cache", "musiq", "koniq.h5")
        if os.path.exists(home_cache):
            self.skipTest(home_cache + " exists")
        cwd = self.path("no-home-cwd")
        os.makedirs(os.path.join(cwd, ".cache", "musiq"), exist_ok=True)
        shutil.copy(self.model, os.path.join(cwd, ".cache", "musiq", "koniq.h5"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("HOME", "XDG_CACHE_HOME", "MUSIQ_WEIGHTS_DIR")}
        r = run("score", "--model", "koniq", os.path.join(self.photos, "chelsea.png"),
                env=env, cwd=cwd)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("looked at " + home_cache, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_concurrent_resume_is_refused(self):
        out = self.path("locked.jsonl")
        self.assertEqual(self.score(os.path.join(self.photos, "chelsea.png"), "-o", out).returncode, 0)
        with open(out, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            r = self.score(self.photos, "-o", out, "--resume")
        self.assertEqual(r.returncode, 2)
        self.assertIn("another musiq run is writing to it", r.stderr)
        with open(out) as f:
            self.assertEqual(len(f.readlines()), 1)

    # 11. Outputs: one lock for every format, links and special files never replaced,
    # records whole or absent, signals under a stalled pipe.
    def test_json_output_writes_through_links_and_into_fifos(self):
        chelsea = os.path.join(self.photos, "chelsea.png")
        target = self.path("link-target.json")
        link = self.path("link.json")
        self.write("link-target.json", b"old")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
        for fmt in ("json", "table"):
            r = self.score(chelsea, "--format", fmt, "-o", link, "--overwrite")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.islink(link), fmt)
            with open(target) as f:
                self.assertIn("chelsea.png", f.read())
        fifo = self.path("records.fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        got = []
        def read_fifo():
            with open(fifo) as f:
                got.append(f.read())
        reader = threading.Thread(target=read_fifo)
        reader.start()
        r = self.score(chelsea, "--format", "json", "-o", fifo, "--overwrite")
        reader.join(60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(stat_is_fifo(fifo))
        self.assertEqual(json.loads(got[0])[0]["path"], chelsea)
        # /dev/stdout as a pipe: written in place, not refused as a link to nothing.
        r = self.score(chelsea, "--format", "json", "-o", "/dev/stdout", "--overwrite")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)[0]["path"], chelsea)
        dangling = self.path("dangling.json")
        if not os.path.lexists(dangling):
            os.symlink(self.path("no-such-dir", "x.json"), dangling)
        r = self.score(chelsea, "--format", "json", "-o", dangling, "--overwrite")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("a symbolic link to a missing file", r.stderr)

    def test_preprocess_output_follows_the_exists_rule(self):
        chelsea = os.path.join(self.photos, "chelsea.png")
        out = self.path("dump.h5")
        kept = self.write("dump.h5", b"precious")
        r = run("preprocess", chelsea, "--output", kept)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dump.h5: exists; use --overwrite to replace it", r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        link = self.path("dump-link.h5")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(out, link)
        r = run("preprocess", chelsea, "--output", link, "--overwrite")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(link))
        with h5py.File(out) as f:
            self.assertEqual(f["pixels"].shape[2], 3)
        fifo = self.path("dump.fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        r = run("preprocess", chelsea, "--output", fifo, "--overwrite")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a regular file", r.stderr)
        self.assertTrue(stat_is_fifo(fifo))

    def test_every_format_takes_the_output_lock(self):
        chelsea = os.path.join(self.photos, "chelsea.png")
        out = self.path("shared-output")
        self.assertEqual(self.score(chelsea, "-o", out, "--overwrite").returncode, 0)
        with open(out, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            for fmt in ("json", "table", "csv", "jsonl"):
                r = self.score(chelsea, "--format", fmt, "-o", out, "--overwrite")
                self.assertEqual(r.returncode, 2, (fmt, r.stderr))
                self.assertIn("another musiq run is writing to it", r.stderr, fmt)
        with open(out) as f:
            self.assertEqual(len(records(f.read())), 1)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".tmp-" in n], [])

    def test_a_full_disk_leaves_whole_csv_rows(self):
        def small_file_limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

        out = self.path("cut.csv")
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([MUSIQ, "score", "--weights", self.model, "-q", self.photos,
                            "--format", "csv", "-o", out], capture_output=True, text=True,
                           preexec_fn=small_file_limit, timeout=600)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("write failed", p.stderr)
        with open(out, newline="") as f:
            text = f.read()
        self.assertTrue(text.endswith("\n"), text)
        rows = list(csv.reader(io.StringIO(text)))
        self.assertTrue(all(len(row) == len(rows[0]) for row in rows), rows)
        r = self.score(self.photos, "--format", "csv", "-o", out, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, newline="") as f:
            self.assertEqual(len(list(csv.reader(f))), 3)  # header and both photos

    def test_sigterm_and_second_ctrl_c_stop_while_stdout_is_stalled(self):
        d = self.path("stall")
        os.makedirs(d, exist_ok=True)
        for k in range(60):
            name = os.path.join(d, "%02d.png" % k)
            if not os.path.exists(name):
                photo((48, 40), seed=k).save(name)
        for signals, code in (((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)):
            read_end, write_end = os.pipe()
            fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: one page
            p = subprocess.Popen([MUSIQ, "score", "--weights", self.model, "-q", "--batch", "1",
                                  d], stdout=write_end, stderr=subprocess.PIPE)
            os.close(write_end)
            self.addCleanup(p.stderr.close)
            self.addCleanup(p.kill)
            self.addCleanup(os.close, read_end)
            # Full: within a record of the page, and the writer blocked in write(2) (a
            # record is written whole or not at all).
            deadline, last, stable_since = time.monotonic() + 120, -1, time.monotonic()
            while time.monotonic() < deadline:
                now = pipe_bytes(read_end)
                if now != last:
                    last, stable_since = now, time.monotonic()
                elif now > 4096 - 512 and blocked_writing_a_pipe(p.pid,
                                                                 time.monotonic() - stable_since):
                    break
                time.sleep(0.05)
            self.assertGreater(pipe_bytes(read_end), 4096 - 512, "the pipe never filled")
            self.assertIsNone(p.poll(), "finished before its output filled the pipe")
            for s in signals[:-1]:
                p.send_signal(s)
                time.sleep(0.3)
            sent = time.monotonic()
            p.send_signal(signals[-1])
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("still running 10 s after %s with a stalled stdout" % (signals,))
            self.assertLess(time.monotonic() - sent, 1.2)
            self.assertEqual(p.returncode, code)
            self.assertIn(b"the output is not being read", p.stderr.read())

    def test_memory_is_bounded_whatever_the_batch(self):
        d = self.path("memory")
        os.makedirs(d, exist_ok=True)
        first = os.path.join(d, "000.png")
        if not os.path.exists(first):
            photo((1024, 768), seed=3).save(first)
        for k in range(1, 120):
            name = os.path.join(d, "%03d.png" % k)
            if not os.path.exists(name):
                os.link(first, name)
        measure = ("import resource, subprocess, sys; "
                   "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
                   "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        # Under AddressSanitizer, freed blocks wait in its quarantine (256 MiB by default),
        # which would count here as if we held them; a small one keeps the bound about us.
        env = dict(os.environ, ASAN_OPTIONS=":".join(filter(None, [
            os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=16"])))
        r = subprocess.run([sys.executable, "-c", measure, MUSIQ, "score", "--weights", self.model,
                            "-q", "--batch", "4096", d], capture_output=True, text=True,
                           timeout=900, env=env)
        code, peak_kib = map(int, r.stdout.split())
        self.assertEqual(code, 0, r.stderr)
        # 120 images of 919 tokens hold 1.3 GB as tokens; the run holds at most 2 x 128 MiB
        # of them, beside the model and the libraries (a CUDA build maps cuBLAS too).
        self.assertLess(peak_kib, 800 * 1024)


def stat_is_fifo(path):
    return stat.S_ISFIFO(os.stat(path).st_mode)


def blocked_writing_a_pipe(pid, stable_for):
    """Whether a thread of `pid` waits in write(2) on a pipe, as the kernel says
    (/proc/PID/task/TID/wchan); where it does not say, whether the pipe has not grown for
    3 s (on a slow machine, e.g. under ASan, one image may take a second)."""
    try:
        waits = [pathlib.Path(f"/proc/{pid}/task/{tid}/wchan").read_text()
                 for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        waits = []
    if any(w not in ("", "0") for w in waits):
        return any("pipe_write" in w for w in waits)  # anon_pipe_write on newer kernels
    return stable_for > 3


def pipe_bytes(fd):
    """Bytes waiting in a pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


if __name__ == "__main__":
    unittest.main()
