#!/usr/bin/python3
"""musiq score on WebDataset tar shards: members streamed from the archive, never extracted.

Scores equal those of the same files extracted (bit for bit); records carry the shard and
the member's key; --resume, --shard and --files-from work on shards; a truncated or
corrupt shard is an error record and the run goes on; a member over --max-tokens is
refused from its header. Run by ctest with MUSIQ_BIN set; uses a small random model.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from fixture_models import SMALL_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))
DATA = os.path.join(ROOT, "tests", "data")

# (member name, source file or bytes): images, a caption, a broken image, a nested key.
SHARD0 = [("00000001.jpg", os.path.join(DATA, "chelsea_200x133_q90.jpg")),
          ("00000001.txt", b"a cat\n"),
          ("00000002.png", os.path.join(DATA, "coffee_portrait_267x400.png")),
          ("00000003.jpg", b"\xff\xd8\xff not really a jpeg"),
          ("part/00000004.jpg", os.path.join(DATA, "hubble_crop_768x204_q90.jpg"))]
SHARD1 = [("00000005.jpg", os.path.join(DATA, "camera_gray_459x371_q90.jpg")),
          ("00000005.json", b"{}"),
          ("00000006.jpg", os.path.join(DATA, "astronaut_portrait_301x509_q92_422.jpg"))]


def run(*args):
    return subprocess.run([MUSIQ, *args], capture_output=True, text=True, timeout=600)


def content(source):
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


def write_tar(path, members):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, source in members:
            data = content(source)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def without_timing(records):
    return [{k: v for k, v in r.items() if k != "ms"} for r in records]


class TarShards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-tar-")
        cls.model = SMALL_MODEL
        cls.shard0 = os.path.join(cls.tmp, "shard-000000.tar")
        cls.shard1 = os.path.join(cls.tmp, "shard-000001.tar")
        write_tar(cls.shard0, SHARD0)
        write_tar(cls.shard1, SHARD1)
        cls.extracted = os.path.join(cls.tmp, "extracted")
        for shard in (cls.shard0, cls.shard1):
            with tarfile.open(shard) as tar:
                tar.extractall(os.path.join(cls.extracted, os.path.basename(shard)))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def score(self, *args):
        return run("score", "--weights", self.model, "-q", "--device", "cpu", *args)

    def records(self, out):
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def test_members_score_as_the_extracted_files(self):
        r = self.score(self.shard0, self.shard1)
        self.assertEqual(r.returncode, 1, r.stderr)  # 00000003.jpg is broken
        records = self.records(r.stdout)
        self.assertEqual([(os.path.basename(x["path"]), x["key"], x["member"]) for x in records],
                         [("shard-000000.tar", "00000001", "00000001.jpg"),
                          ("shard-000000.tar", "00000002", "00000002.png"),
                          ("shard-000000.tar", "00000003", "00000003.jpg"),
                          ("shard-000000.tar", "part/00000004", "part/00000004.jpg"),
                          ("shard-000001.tar", "00000005", "00000005.jpg"),
                          ("shard-000001.tar", "00000006", "00000006.jpg")])
        broken = records[2]
        self.assertIn("shard-000000.tar/00000003.jpg: ", broken["error"])
        self.assertNotIn("score", broken)
        files = [os.path.join(self.extracted, os.path.basename(x["path"]), x["member"])
                 for x in records]
        f = self.score(*files)
        by_file = {x["path"]: x for x in self.records(f.stdout)}
        for record, path in zip(records, files):
            if "error" in record:
                continue
            expected = by_file[path]
            for field in ("score", "width", "height", "tokens", "device", "model", "note"):
                self.assertEqual(record[field], expected[field], (record, field))
        # One image at a time as well: packing never changes a score.
        single = self.records(self.score("--batch", "1", self.shard0, self.shard1).stdout)
        self.assertEqual(without_timing(single), without_timing(records))

    def test_resume_knows_the_members_done(self):
        out = os.path.join(self.tmp, "resume.jsonl")
        full = self.score("-o", out, "--overwrite", self.shard0, self.shard1)
        self.assertEqual(full.returncode, 1, full.stderr)
        with open(out) as f:
            lines = f.readlines()
        self.assertEqual(len(lines), 6)
        with open(out, "w") as f:
            f.writelines(lines[:3])
        again = run("score", "--weights", self.model, "--device", "cpu", "-o", out, "--resume",
                    self.shard0, self.shard1)
        self.assertIn("resuming: 3 images already in", again.stderr)
        with open(out) as f:
            resumed = [json.loads(line) for line in f]
        self.assertEqual(without_timing(resumed), without_timing(json.loads(x) for x in lines))

    def test_csv_has_key_and_member_columns_and_resumes(self):
        out = os.path.join(self.tmp, "scores.csv")
        r = self.score("--format", "csv", "-o", out, "--overwrite", self.shard1)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([(row["key"], row["member"]) for row in rows],
                         [("00000005", "00000005.jpg"), ("00000006", "00000006.jpg")])
        again = self.score("--format", "csv", "-o", out, "--resume", self.shard1)
        self.assertEqual(again.returncode, 0, again.stderr)
        with open(out, newline="") as f:
            self.assertEqual(len(list(csv.DictReader(f))), 2)

    def test_csv_written_before_member_columns_still_resumes(self):
        old = os.path.join(self.tmp, "old.csv")
        photo = os.path.join(DATA, "chelsea_200x133_q90.jpg")
        with open(old, "w") as f:
            f.write("path,model,score,device,width,height,tokens,ms,error,note\n"
                    f"{photo},random,50,cpu,200,133,167,1.0,,\n")
        other = os.path.join(DATA, "camera_gray_459x371_q90.jpg")
        r = self.score("--format", "csv", "-o", old, "--resume", photo, other)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(old, newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual([len(row) for row in rows], [10, 10, 10])
        self.assertEqual(rows[2][0], other)
        r = self.score("--format", "csv", "-o", old, "--resume", self.shard1)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot add tar members to this CSV file", r.stderr)

    def test_shards_divide_whole_tars_and_files_from_lists_them(self):
        listing = os.path.join(self.tmp, "shards.txt")
        with open(listing, "w") as f:
            f.write(self.shard1 + "\n" + self.shard0 + "\n")
        parts = []
        for k in range(2):
            r = self.score("--files-from", listing, "--shard", f"{k}/2")
            parts.append({os.path.basename(x["path"]) for x in self.records(r.stdout)})
        self.assertEqual(parts, [{"shard-000000.tar"}, {"shard-000001.tar"}])

    def test_truncated_and_corrupt_shards_are_error_records(self):
        with open(self.shard0, "rb") as f:
            whole = f.read()
        truncated = os.path.join(self.tmp, "truncated.tar")
        with open(truncated, "wb") as f:  # ends inside 00000002.png's data
            f.write(whole[:512 * 3 + 9137 // 512 * 512 + 40000])
        garbage = os.path.join(self.tmp, "garbage.tar")
        with open(garbage, "wb") as f:
            f.write(b"this is not a tar file\n" * 100)
        missing = os.path.join(self.tmp, "missing.tar")
        r = self.score(truncated, garbage, missing, self.shard1)
        self.assertEqual(r.returncode, 1, r.stderr)
        records = self.records(r.stdout)
        by_name = [(os.path.basename(x["path"]), x.get("member", ""), "error" in x) for x in records]
        # Sorted by path; the truncated shard's members up to the damage, then its error.
        self.assertEqual(by_name, [("garbage.tar", "", True), ("missing.tar", "", True),
                                   ("shard-000001.tar", "00000005.jpg", False),
                                   ("shard-000001.tar", "00000006.jpg", False),
                                   ("truncated.tar", "00000001.jpg", False),
                                   ("truncated.tar", "00000002.png", True),
                                   ("truncated.tar", "", True)])
        for x in records:
            if "error" in x:
                self.assertEqual(len(x["error"].splitlines()), 1, x["error"])
        self.assertIn("missing.tar: cannot open tar shard", records[1]["error"])

    def test_costly_member_refused_from_its_header(self):
        r = self.score("--max-tokens", "200", self.shard1)  # they make 343 and 292
        self.assertEqual(r.returncode, 1, r.stderr)
        records = self.records(r.stdout)
        self.assertEqual(len(records), 2)
        for x in records:
            self.assertIn("too costly", x["error"])
            self.assertIn(f"shard-000001.tar/{x['member']}: ", x["error"])


if __name__ == "__main__":
    unittest.main()
