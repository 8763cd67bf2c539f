#!/usr/bin/env python3
"""Tests of oci_image.py on a small module (the unit layer runs them; the compose layer
packages and checks the real filter): the same bytes from the same .wasm, a layout its
own check accepts, and one it must refuse for each way a layout can be wrong."""

import io
import json
import sys
import tarfile
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oci_image  # noqa: E402

WASM = b"\0asm\x01\0\0\0" + bytes(range(256)) * 4


class OciImage(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def build(self, name, wasm=WASM, tag="1.2.3"):
        return oci_image.build_layout(wasm, self.tmp / name, tag)

    def failures(self, layout, printed, wasm=WASM, tag="1.2.3"):
        again = self.tmp / f"again-{layout}"
        if not again.exists():
            self.build(again.name, WASM, tag)
        check = oci_image.Checks()
        with redirect_stdout(io.StringIO()) as out:
            oci_image.check_layout(self.tmp / layout, wasm, tag, printed, again, check)
        return check, out.getvalue()

    def files(self, layout):
        root = self.tmp / layout
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def test_the_same_wasm_gives_the_same_bytes(self):
        self.assertEqual(self.build("a"), self.build("b"))
        self.assertEqual(self.files("a"), self.files("b"))
        self.assertNotEqual(self.build("c", WASM + b"\0"), self.build("d"))

    def test_a_good_layout_passes_every_check(self):
        printed = self.build("good")
        check, out = self.failures("good", printed)
        self.assertEqual(check.failed, 0, out)
        self.assertGreaterEqual(check.passed, 16, out)

    def test_the_layer_holds_only_plugin_wasm_normalised(self):
        self.build("good")
        index = json.loads((self.tmp / "good/index.json").read_bytes())
        blobs = self.tmp / "good/blobs/sha256"
        manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_bytes())
        layer = (blobs / manifest["layers"][0]["digest"][7:]).read_bytes()
        self.assertEqual(layer[4:8], b"\0\0\0\0", "gzip header time is 0")
        with tarfile.open(fileobj=io.BytesIO(layer)) as t:
            (m,) = t.getmembers()
            self.assertEqual((m.name, m.mode, m.uid, m.gid, m.mtime), ("plugin.wasm", 0o644, 0, 0, 0))
            self.assertEqual(t.extractfile(m).read(), WASM)

    def test_a_tampered_blob_fails(self):
        printed = self.build("bad")
        index = json.loads((self.tmp / "bad/index.json").read_bytes())
        blobs = self.tmp / "bad/blobs/sha256"
        manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_bytes())
        layer = blobs / manifest["layers"][0]["digest"][7:]
        data = bytearray(layer.read_bytes())
        data[len(data) // 2] ^= 0xFF
        layer.write_bytes(bytes(data))
        check, out = self.failures("bad", printed)
        self.assertIn("FAIL  layer blob matches its digest and size", out)

    def test_another_wasm_or_digest_or_tag_fails(self):
        printed = self.build("good")
        check, out = self.failures("good", printed, wasm=WASM + b"\0")
        self.assertIn("FAIL  plugin.wasm is the built .wasm", out)
        check, out = self.failures("good", "sha256:" + "0" * 64)
        self.assertIn("FAIL  manifest digest is the one printed", out)
        check, out = self.failures("good", printed, tag="9.9.9")
        self.assertIn("FAIL  index.json: one manifest, tagged 9.9.9", out)

    def test_a_stray_blob_and_a_missing_file_fail(self):
        printed = self.build("stray")
        (self.tmp / "stray/blobs/sha256" / ("f" * 64)).write_bytes(b"stray")
        check, out = self.failures("stray", printed)
        self.assertIn("FAIL  blobs/ holds exactly the referenced blobs", out)
        (self.tmp / "stray/index.json").unlink()
        check, out = self.failures("stray", printed)
        self.assertIn("FAIL  layout readable", out)

    def test_the_archive_is_deterministic(self):
        self.build("good")
        oci_image.write_tar(self.tmp / "good", self.tmp / "a.tar")
        oci_image.write_tar(self.tmp / "good", self.tmp / "b.tar")
        self.assertEqual((self.tmp / "a.tar").read_bytes(), (self.tmp / "b.tar").read_bytes())
        with tarfile.open(self.tmp / "a.tar") as t:
            names = t.getnames()
            self.assertIn("./index.json", names)
            self.assertIn("./blobs/sha256", names)
            self.assertTrue(all(m.mtime == 0 and m.uid == 0 for m in t.getmembers()))

    def test_main_refuses_what_is_not_wasm(self):
        (self.tmp / "x.wasm").write_bytes(b"ELF")
        with self.assertRaises(SystemExit) as e:
            oci_image.main(["--wasm", str(self.tmp / "x.wasm"), "--out", str(self.tmp / "out")])
        self.assertIn("not a WebAssembly module", str(e.exception.code))

    def test_main_writes_layout_and_archive(self):
        (self.tmp / "f.wasm").write_bytes(WASM)
        with redirect_stdout(io.StringIO()) as out:
            oci_image.main(["--wasm", str(self.tmp / "f.wasm"), "--out", str(self.tmp / "out"),
                            "--tag", "7.0.0", "--tar", str(self.tmp / "out.tar"), "--check"])
        self.assertIn("0 failed (OCI layout check)", out.getvalue())
        self.assertIn("(tag 7.0.0)", out.getvalue())
        self.assertTrue((self.tmp / "out.tar").is_file())
        self.assertEqual(oci_image.workspace_version(), oci_image.workspace_version().strip())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=0).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed (oci_image.py)")
    sys.exit(1 if failed else 0)
