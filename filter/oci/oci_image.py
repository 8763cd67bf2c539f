#!/usr/bin/env python3
"""Packages the chokepoint filter (.wasm) as an OCI image layout that Istio's WasmPlugin and
Envoy Gateway's EnvoyExtensionPolicy can pull once it is pushed to a registry.

The image is the "compat" Wasm image both accept: one layer, a gzipped tar holding only
`plugin.wasm`, under standard OCI media types (manifest v1, config v1, layer tar+gzip).
It is deterministic: the same .wasm gives the same bytes and digests (fixed mtime, owner
and mode, no name or time in the gzip header, canonical JSON). Standard library only.
Pushing is the user's step (no registry is needed here).

Usage: oci_image.py --wasm FILE [--out DIR] [--tag TAG] [--tar FILE] [--check]
  --wasm FILE  the filter to package (scripts/oci-image builds and passes the release one)
  --out DIR    the OCI layout to write (default: target/oci/chokepoint-filter), replaced
  --tag TAG    the layout's tag, org.opencontainers.image.ref.name (default: the
               workspace version)
  --tar FILE   also write the layout as a tar (an oci-archive), deterministic too
  --check      validate the layout (index -> manifest -> config and layer, digests and
               sizes, the layer holds exactly plugin.wasm equal to the .wasm, a second
               build gives the same bytes; skopeo's view of it when skopeo is there)
               and print "N passed, M failed"
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
WASM_MAGIC = b"\0asm"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def canonical(obj):
    """Sorted keys, no whitespace: the digest depends on the content only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(wasm):
    """One regular file, plugin.wasm, owner 0:0, mode 0644, mtime 0: the same tar for the
    same .wasm."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mtime, info.mode = len(wasm), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        t.addfile(info, io.BytesIO(wasm))
    return out.getvalue()


def gzipped(data):
    """gzip -n -9: no file name and time 0 in the header."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as g:
        g.write(data)
    return out.getvalue()


def build_layout(wasm, out, tag):
    """Writes the layout of `wasm` (bytes) into `out` (a new directory) and returns the
    manifest digest."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data):
        d = digest(data)
        (blobs / d[7:]).write_bytes(data)
        return {"digest": d, "size": len(data)}

    raw = layer_tar(wasm)
    layer = blob(gzipped(raw))
    config = blob(canonical({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
    }))
    manifest = blob(canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, **config},
        "layers": [{"mediaType": LAYER_TYPE, **layer,
                    "annotations": {"org.opencontainers.image.title": "plugin.wasm"}}],
        "annotations": {"org.opencontainers.image.title": "chokepoint-filter",
                        "org.opencontainers.image.version": tag},
    }))
    (out / "index.json").write_bytes(canonical({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": MANIFEST_TYPE, **manifest,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    return manifest["digest"]


def write_tar(layout, file):
    """The layout as one tar (what `skopeo copy oci-archive:FILE` reads), deterministic:
    sorted entries, owner 0:0, mtime 0, directories 0755 and files 0644."""
    with tarfile.open(file, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path in sorted(layout.rglob("*"), key=lambda p: str(p.relative_to(layout)).encode()):
            info = t.gettarinfo(str(path), "./" + str(path.relative_to(layout)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_dir():
                t.addfile(info)
            else:
                with open(path, "rb") as f:
                    t.addfile(info, f)


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}{': ' + detail if detail else ''}")
        return ok


def check_layout(out, wasm, tag, printed, again_dir, check):
    """Reads the layout at `out` back as a registry client would, and compares it with a
    second build of the same .wasm in `again_dir`."""

    def blob(d):
        return (out / "blobs" / "sha256" / d.split(":", 1)[1]).read_bytes()

    def matches(desc):
        try:
            data = blob(desc["digest"])
        except OSError as e:
            return False, str(e)
        if len(data) != desc["size"]:
            return False, f"size {len(data)} != {desc['size']}"
        return digest(data) == desc["digest"], f"content hashes to {digest(data)}"

    try:
        layout = json.loads((out / "oci-layout").read_bytes())
        check("oci-layout is version 1.0.0", layout == {"imageLayoutVersion": "1.0.0"}, str(layout))
        index = json.loads((out / "index.json").read_bytes())
        ms = index.get("manifests", [])
        check("index.json: one manifest, tagged " + tag,
              index.get("schemaVersion") == 2 and len(ms) == 1
              and ms[0].get("mediaType") == MANIFEST_TYPE
              and ms[0].get("annotations", {}).get("org.opencontainers.image.ref.name") == tag, str(index))
        desc = ms[0]
        check("manifest blob matches the index's digest and size", *matches(desc))
        check("manifest digest is the one printed", desc["digest"] == printed, desc["digest"])
        manifest = json.loads(blob(desc["digest"]))
        check("manifest: OCI image manifest v1",
              manifest.get("schemaVersion") == 2 and manifest.get("mediaType") == MANIFEST_TYPE, str(manifest))
        cfg = manifest["config"]
        check("config: OCI image config v1", cfg.get("mediaType") == CONFIG_TYPE, str(cfg))
        check("config blob matches its digest and size", *matches(cfg))
        layers = manifest.get("layers", [])
        check("exactly one layer, tar+gzip",
              len(layers) == 1 and layers[0].get("mediaType") == LAYER_TYPE, str(layers))
        check("layer blob matches its digest and size", *matches(layers[0]))
        raw = gzip.decompress(blob(layers[0]["digest"]))
        config = json.loads(blob(cfg["digest"]))
        check("config's diff_id is the uncompressed layer's digest",
              config.get("rootfs", {}).get("diff_ids") == [digest(raw)], str(config.get("rootfs")))
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            members = t.getmembers()
            only = len(members) == 1 and members[0].name == "plugin.wasm" and members[0].isfile()
            check("layer holds exactly plugin.wasm", only, str([m.name for m in members]))
            if only:
                m = members[0]
                data = t.extractfile(m).read()
                check("plugin.wasm is the built .wasm", data == wasm, f"{len(data)} bytes vs {len(wasm)}")
                check("tar entry is normalised (mtime 0, 0:0, 0644)",
                      m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.mode == 0o644
                      and not m.uname and not m.gname,
                      f"{m.mtime} {m.uid}:{m.gid} {oct(m.mode)} {m.uname}:{m.gname}")
        referenced = {desc["digest"], cfg["digest"], layers[0]["digest"]}
        present = {"sha256:" + n for n in os.listdir(out / "blobs" / "sha256")}
        check("blobs/ holds exactly the referenced blobs", present == referenced, f"{sorted(present ^ referenced)}")
        again = json.loads((again_dir / "index.json").read_bytes())["manifests"][0]["digest"]
        check("a second build gives the same digest", again == printed, f"{again} vs {printed}")
        files = ["index.json", "oci-layout"] + [f"blobs/sha256/{d[7:]}" for d in referenced]
        check("a second build gives the same bytes",
              all((out / p).read_bytes() == (again_dir / p).read_bytes() for p in files))
    except Exception as e:  # a malformed layout: one failure, with the reason
        check("layout readable", False, repr(e))


def check_with_skopeo(out, tag, printed, scratch, check):
    """An independent reader: skopeo parses the layout and reports the same digest."""
    ref = f"oci:{out}:{tag}"
    raw = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True)
    seen = digest(raw.stdout)
    ok = (raw.returncode == 0 and seen == printed
          and subprocess.run(["skopeo", "inspect", ref], capture_output=True).returncode == 0
          and subprocess.run(["skopeo", "copy", "-q", ref, f"dir:{scratch}"], capture_output=True).returncode == 0)
    check("skopeo reads the layout (inspect, copy) and sees the same digest", ok,
          f"inspect/copy of {ref} failed or saw {seen}")


def workspace_version():
    text = (ROOT / "Cargo.toml").read_text()
    section = re.search(r"^\[workspace\.package\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    version = section and re.search(r'^version\s*=\s*"(.*)"', section.group(1), re.M)
    if not version:
        sys.exit("error: no version in Cargo.toml's [workspace.package]: pass --tag")
    return version.group(1)


def summary(out, rel, tag, tar, wasm_size, printed):
    hex_ = printed[7:]
    blobs = sum(p.stat().st_size for p in (out / "blobs").rglob("*") if p.is_file())
    archive = f"\nOCI archive:      {tar}" if tar else ""
    return f"""
OCI image layout: {rel} (tag {tag}){archive}
  layer plugin.wasm: {wasm_size} bytes, image blobs: {blobs} bytes
manifest digest:
  sha256: {hex_}

Pushing is your step (nothing here reaches a registry). Either tool pushes it as is:
  skopeo copy oci:{rel}:{tag} docker://REGISTRY/chokepoint-filter:{tag}
  oras cp --from-oci-layout {rel}:{tag} REGISTRY/chokepoint-filter:{tag}
Then point the mesh at it, pinned to the digest above:
  Istio WasmPlugin:            spec.url: oci://REGISTRY/chokepoint-filter:{tag}
                               spec.sha256: {hex_}
  Envoy Gateway (EnvoyExtensionPolicy wasm[].code):
                               type: Image
                               image: {{url: REGISTRY/chokepoint-filter:{tag}, sha256: {hex_}}}"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "target/oci/chokepoint-filter")
    ap.add_argument("--tag")
    ap.add_argument("--tar", type=Path)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    tag = args.tag or workspace_version()
    try:
        wasm = args.wasm.read_bytes()
    except OSError as e:
        sys.exit(f"error: no .wasm at {args.wasm}: {e.strerror}")
    if not wasm.startswith(WASM_MAGIC):
        sys.exit(f"error: {args.wasm} is not a WebAssembly module")
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    print(f"==> packaging {args.wasm.name} as an OCI image layout", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".oci.") as tmp:
        tmp = Path(tmp)
        printed = build_layout(wasm, tmp / "layout", tag)
        shutil.rmtree(out, ignore_errors=True)
        (tmp / "layout").rename(out)
        if args.tar:
            write_tar(out, args.tar)
        if args.check:
            print("==> checking the OCI layout", file=sys.stderr)
            check = Checks()
            build_layout(wasm, tmp / "again", tag)
            check_layout(out, wasm, tag, printed, tmp / "again", check)
            print(f"{check.passed} passed, {check.failed} failed (OCI layout check)")
            if not check.failed and shutil.which("skopeo"):
                skopeo = Checks()
                check_with_skopeo(out, tag, printed, tmp / "skopeo-copy", skopeo)
                print(f"{skopeo.passed} passed, {skopeo.failed} failed (skopeo)")
                check.failed += skopeo.failed
            if check.failed:
                sys.exit(f"error: the OCI layout at {out} is not valid")
    rel = os.path.relpath(out, ROOT) if out.is_relative_to(ROOT) else str(out)
    print(summary(out, rel, tag, args.tar, len(wasm), printed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
