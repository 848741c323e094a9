#!/usr/bin/env python3
"""Push a hand-made unikernel image the way an attacker would: layers and config exactly as
given, no nubo tool in between to refuse them. Prints repo@sha256:<manifest digest>.

  oci_push.py REGISTRY REPO TAG --kernel-zeros BYTES [--gzip] [--env-count N] [--cmd A]...
              [--token T]

--token: the nubo token the registry's token service (the controller) is asked with.

--kernel-zeros: a single-file tar layer holding /unikraft/bin/kernel of BYTES bytes (a Multiboot
  header, then zeros), streamed through gzip when --gzip (a 512 MiB kernel is ~0.5 MB).
--env-count: the config's Env holds N entries K<i>=v<i>.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import regclient  # noqa: E402

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
# A Multiboot v1 header (magic, flags 0, checksum): a kernel the agent would boot (on pc), so
# only the limits under test can refuse it, not the boot-protocol probe.
MB1_MAGIC = 0x1BADB002
KERNEL_HEAD = struct.pack("<III", MB1_MAGIC, 0, (-MB1_MAGIC) & 0xFFFFFFFF)


def kernel_layer(size, gz):
    info = tarfile.TarInfo("unikraft/bin/kernel")
    info.size = size
    info.mode = 0o755
    head = info.tobuf(format=tarfile.USTAR_FORMAT)
    pad = (512 - size % 512) % 512
    comp = zlib.compressobj(9, zlib.DEFLATED, 31) if gz else None
    out = []

    def put(b):
        out.append(comp.compress(b) if comp else b)

    put(head)
    put(KERNEL_HEAD[:size])
    left = size - min(size, len(KERNEL_HEAD))
    chunk = b"\0" * (1 << 20)
    while left > 0:
        n = min(left, len(chunk))
        put(chunk[:n])
        left -= n
    put(b"\0" * (pad + 1024))
    if comp:
        out.append(comp.flush())
    return b"".join(out)


def call(method, url, token, data=None, headers=None, want=(200, 201, 202)):
    status, hdrs, body = regclient.request(method, url, token, data, headers)
    if status not in want:
        sys.exit(f"oci_push: {method} {url}: HTTP {status}: {body[:300].decode(errors='replace')}")
    return hdrs


def push_blob(reg, repo, data, token):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = call("POST", f"{reg}/v2/{repo}/blobs/uploads/", token, b"")["Location"]
    if loc.startswith("/"):
        loc = reg + loc
    loc += ("&" if "?" in loc else "?") + "digest=" + digest
    call("PUT", loc, token, data, {"Content-Type": "application/octet-stream"})
    return digest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("registry")
    ap.add_argument("repo")
    ap.add_argument("tag")
    ap.add_argument("--kernel-zeros", type=int, required=True)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--env-count", type=int, default=0)
    ap.add_argument("--cmd", action="append", default=[])
    ap.add_argument("--token")
    a = ap.parse_args()
    reg = a.registry.rstrip("/")
    layer = kernel_layer(a.kernel_zeros, a.gzip)
    ldig = push_blob(reg, a.repo, layer, a.token)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"K{i}=v{i}" for i in range(a.env_count)], "Cmd": a.cmd},
        "rootfs": {"type": "layers", "diff_ids": [ldig]},
    }
    cbody = json.dumps(config, separators=(",", ":")).encode()
    cdig = push_blob(reg, a.repo, cbody, a.token)
    lmt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if a.gzip else "")
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": cdig, "size": len(cbody)},
        "layers": [{"mediaType": lmt, "digest": ldig, "size": len(layer),
                    "annotations": {"org.unikraft.kernel.image": "/unikraft/bin/kernel"}}],
    }
    mbody = json.dumps(manifest, separators=(",", ":")).encode()
    call("PUT", f"{reg}/v2/{a.repo}/manifests/{a.tag}", a.token, mbody,
         {"Content-Type": MT_MANIFEST})
    print(f"{a.repo}@sha256:{hashlib.sha256(mbody).hexdigest()}")
    print(f"layer {len(layer)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
