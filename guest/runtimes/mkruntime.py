#!/usr/bin/env python3
"""nubo's one runtime builder: turns guest/runtimes/<name>/runtime.toml into an initramfs.

    mkruntime.py --specs DIR --out DIR --cache DIR --init FILE --mkcpio FILE NAME

Everything in an image comes from Debian 12's archive: the packages a spec names are resolved
with apt's own resolver against an empty dpkg status (so the host's installed packages, or a
third-party repository's newer candidate, never leak in), downloaded once with `apt-get
download` into CACHE/debs and unpacked with `dpkg-deb -x` into CACHE/x. The image gets the
named packages' files (less docs, man pages, init scripts and the spec's `drop` globs), the
shared libraries their ELF files need (DT_NEEDED/RUNPATH/PT_INTERP closure, looked up in the
dependency closure's packages, never on the host), the spec's own files, links and dirs, and
the base layer (/init, kernel modules, busybox) unless the spec says `base = false`.

Writes OUT/NAME/initrd.cpio (via guest_mkcpio: sorted, 0:0, fixed mtimes, so the bytes repeat),
OUT/NAME/pkg.args (NUL-separated `nubo pkg` arguments: --arg/--env/--label), OUT/NAME/tags, and
for a spec with `kernel`: OUT/NAME/vmlinuz, vmlinux (the PVH ELF, when extractable) and
kernel-release. No per-runtime code: a runtime is its spec.
"""
import argparse
import fcntl
import fnmatch
import glob
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import struct
import subprocess
import sys
import tomllib

ARCH_LIBDIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib",
                "/usr/local/lib"]
# Never part of an image: documentation, init-system glue, shell completions, translations.
DROP_ALWAYS = ["/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/lintian",
               "/usr/share/bug", "/usr/share/locale", "/usr/share/bash-completion", "/usr/share/zsh",
               "/usr/share/fish", "/usr/share/vim", "/usr/share/gdb", "/usr/share/menu",
               "/usr/share/pixmaps", "/usr/share/applications", "/usr/share/icons",
               "/usr/share/apport", "/usr/share/debconf", "/usr/share/polkit-1",
               "/etc/init.d", "/etc/init", "/etc/logrotate.d", "/etc/cron.*", "/etc/systemd",
               "/lib/systemd", "/usr/lib/systemd", "/usr/lib/tmpfiles.d", "/usr/lib/sysusers.d",
               "/usr/lib/sysctl.d", "/etc/apparmor.d", "/etc/ufw", "/etc/default", "/etc/rc?.d",
               "/usr/share/mime", "/var/lib/dpkg"]
# Packages whose files no image uses (maintainer-script and init-system plumbing): not even
# downloaded, so their own dependencies never count either.
SKIP_DOWNLOAD = {"debconf", "adduser", "dpkg", "init-system-helpers", "lsb-base", "sysvinit-utils",
                 "passwd", "login", "ucf", "sensible-utils", "procps", "systemd", "systemd-sysv",
                 "ca-certificates-java", "java-common", "debianutils", "install-info", "iproute2",
                 "libcap2-bin", "netbase", "logrotate", "cron", "dbus", "lsb-release",
                 "mysql-common", "galera-4", "rsync", "socat", "psmisc", "pwgen", "gawk",
                 "libdbi-perl", "libdbd-mariadb-perl", "libconfig-inifiles-perl",
                 "libterm-readkey-perl", "perl", "perl-modules-5.36", "php-common",
                 "nginx-core", "python3"}
MAX_SPEC_BYTES = 64 * 1024


def die(msg):
    print(f"mkruntime: {msg}", file=sys.stderr)
    sys.exit(1)


def say(msg):
    print(f"mkruntime: {msg}", file=sys.stderr)


def load_spec(specs, name, seen=()):
    path = os.path.join(specs, name, "runtime.toml")
    if name in seen:
        die(f"{path}: base chain loops ({' -> '.join(seen + (name,))})")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        known = sorted(d for d in os.listdir(specs)
                       if os.path.isfile(os.path.join(specs, d, "runtime.toml")))
        die(f"no runtime '{name}' (known: {', '.join(known)})")
    if len(data) > MAX_SPEC_BYTES:
        die(f"{path} is larger than {MAX_SPEC_BYTES} bytes")
    try:
        spec = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        die(f"{path}: {e}")
    allowed = {"description", "version", "tags", "answers", "base", "kernel", "modules", "packages",
               "keep", "drop", "from_deps", "files", "links", "dirs", "concat", "pycompile",
               "cmd", "env", "ports", "labels", "memory_mb", "user"}
    for k in spec:
        if k not in allowed:
            die(f"{path}: unknown key '{k}' (known: {', '.join(sorted(allowed))})")
    for k in ("tags", "packages", "keep", "drop", "from_deps", "dirs", "cmd", "modules",
              "pycompile", "answers"):
        v = spec.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            die(f"{path}: '{k}' must be a list of strings")
    for k in ("links", "env", "labels", "concat"):
        v = spec.get(k, {})
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            die(f"{path}: '{k}' must be a table of strings")
    if not spec.get("tags"):
        die(f"{path}: 'tags' must name at least one tag (e.g. [\"latest\"])")
    spec["_name"] = name
    spec["_dir"] = os.path.dirname(path)
    base = spec.get("base", "base" if name != "base" else False)
    spec["_base"] = load_spec(specs, base, seen + (name,)) if base else None
    return spec


# ------------------------------------------------------------------------- Debian packages

class Archive:
    """apt's resolver and downloader against Debian's archive, with a cache on disk."""

    def __init__(self, cache):
        self.cache = cache
        self.debs = os.path.join(cache, "debs")
        self.xdir = os.path.join(cache, "x")
        os.makedirs(self.debs, exist_ok=True)
        os.makedirs(self.xdir, exist_ok=True)
        # An empty dpkg status: candidates come from the archive only, whatever the host has.
        self.status = os.path.join(cache, "empty-status")
        if not os.path.exists(self.status):
            open(self.status, "w").close()
        self.apt_opts = ["-o", f"Dir::State::status={self.status}", "-o", "Debug::NoLocking=1",
                         "-o", "APT::Install-Recommends=0", "-o", "APT::Install-Suggests=0"]
        self.lock = open(os.path.join(cache, ".lock"), "w")

    def lists_stamp(self):
        h = hashlib.sha256()
        for p in sorted(glob.glob("/var/lib/apt/lists/*_Packages*")):
            st = os.stat(p)
            h.update(f"{p} {st.st_size} {st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def resolve(self, packages):
        """[(name, version)] for packages and their whole Depends/Pre-Depends closure."""
        key = hashlib.sha256(("\n".join(sorted(packages)) + self.lists_stamp()).encode()).hexdigest()[:16]
        memo = os.path.join(self.cache, f"resolve-{key}.json")
        if os.path.exists(memo):
            with open(memo) as f:
                return [tuple(x) for x in json.load(f)]
        # Name the packages apt does not know before asking it to resolve, so the error says which.
        r = subprocess.run(["apt-cache", *self.apt_opts, "policy", *packages], capture_output=True,
                           text=True)
        candidates, cur = {}, None
        for line in r.stdout.splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                cur = line[:-1]
            elif cur and line.strip().startswith("Candidate:"):
                candidates[cur] = line.split(":", 1)[1].strip()
        missing = [p for p in packages if candidates.get(p, "(none)") == "(none)"]
        if missing:
            die(f"package{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in Debian's "
                f"archive as apt sees it (misspelt? apt-get update?)")
        r = subprocess.run(["apt-get", *self.apt_opts, "install", "-s", "-q", *packages],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die("apt cannot resolve " + " ".join(packages) + ": " +
                " ".join(l for l in r.stderr.splitlines() if l.startswith("E:")))
        out = []
        for line in r.stdout.splitlines():
            if line.startswith("Inst "):
                f = line.split()
                out.append((f[1], f[2].lstrip("(")))
        if not out:
            die("apt resolved nothing for " + " ".join(packages))
        with open(memo + ".tmp", "w") as f:
            json.dump(out, f)
        os.rename(memo + ".tmp", memo)
        return out

    def kernel_package(self, meta):
        """The linux-image-<abi>-cloud-amd64 the meta package depends on, as the archive has it."""
        r = subprocess.run(["apt-cache", *self.apt_opts, "depends", "--no-recommends",
                            "--no-suggests", "--no-enhances", "--no-conflicts", "--no-breaks",
                            "--no-replaces", meta], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("Depends: linux-image-"):
                return line.split()[1]
        die(f"cannot resolve {meta} to a kernel package (apt-get update? is it in sources.list?)")

    def deb_path(self, name, version):
        v = version.replace(":", "%3a")
        hits = glob.glob(os.path.join(self.debs, f"{glob.escape(name)}_{glob.escape(v)}_*.deb"))
        return hits[0] if hits else None

    def fetch(self, pkgs):
        """Download what is not cached yet (one apt-get call), then unpack each once."""
        with_lock(self.lock)
        need = [f"{n}={v}" for n, v in pkgs if not self.deb_path(n, v)]
        if need:
            say(f"downloading {len(need)} package(s) from Debian into {self.debs}")
            r = subprocess.run(["apt-get", *self.apt_opts, "download", "-q", *need], cwd=self.debs,
                               capture_output=True, text=True)
            if r.returncode != 0:
                die("apt-get download failed: " + " ".join(
                    l for l in r.stderr.splitlines() if not l.startswith("W: Download is performed unsandboxed")))
        roots = {}
        for n, v in pkgs:
            deb = self.deb_path(n, v)
            if not deb:
                die(f"apt-get download left no .deb for {n} {v}")
            root = os.path.join(self.xdir, os.path.basename(deb)[:-4])
            if not os.path.exists(root + "/.nubo-unpacked"):
                shutil.rmtree(root, ignore_errors=True)
                r = subprocess.run(["dpkg-deb", "-x", deb, root], capture_output=True, text=True)
                if r.returncode != 0:
                    die(f"cannot unpack {deb}: {r.stderr.strip()}")
                open(root + "/.nubo-unpacked", "w").close()
            roots[n] = root
        unlock(self.lock)
        return roots


def with_lock(f):
    fcntl.flock(f, fcntl.LOCK_EX)


def unlock(f):
    fcntl.flock(f, fcntl.LOCK_UN)


def walk(root):
    """Image path -> host path of every file, link and dir under an unpacked package."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = d[len(root):] or "/"
        for x in dirs + files:
            if rel == "/" and x == ".nubo-unpacked":
                continue
            out[os.path.join(rel, x)] = os.path.join(d, x)
    return out


def matches(path, patterns):
    """True when path or one of its ancestors matches a glob."""
    p = path
    while p and p != "/":
        if any(fnmatch.fnmatchcase(p, g) for g in patterns):
            return True
        p = os.path.dirname(p)
    return False


# ------------------------------------------------------------------------- ELF closure

def elf_deps(path):
    """(interp, needed sonames, runpath dirs) of an ELF64 file, or None for anything else."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp, dyn, loads = None, None, []
    for i in range(phnum):
        o = phoff + i * phentsize
        if o + 56 > len(data):
            return None
        ptype, _, poff, pvaddr, _, pfilesz = struct.unpack_from("<IIQQQQ", data, o)
        if ptype == 3:
            interp = data[poff:poff + pfilesz].split(b"\0")[0].decode(errors="replace")
        elif ptype == 2:
            dyn = (poff, pfilesz)
        elif ptype == 1:
            loads.append((pvaddr, poff, pfilesz))
    if not dyn:
        return (interp, [], [])

    def v2o(addr):
        for va, off, sz in loads:
            if va <= addr < va + sz:
                return off + addr - va
        return None
    entries, strtab = [], None
    for o in range(dyn[0], dyn[0] + dyn[1] - 15, 16):
        tag, val = struct.unpack_from("<qQ", data, o)
        if tag == 0:
            break
        if tag == 5:
            strtab = v2o(val)
        entries.append((tag, val))
    if strtab is None:
        return (interp, [], [])

    def s(off):
        return data[strtab + off:data.index(b"\0", strtab + off)].decode(errors="replace")
    needed = [s(v) for t, v in entries if t == 1]
    runpath = []
    for t, v in entries:
        if t in (15, 29):
            runpath += s(v).split(":")
    return (interp, needed, runpath)


class Universe:
    """Every path of every package in the dependency closure: where libraries are looked up."""

    def __init__(self, roots):
        self.paths = {}
        for root in roots:
            for p, h in walk(root).items():
                self.paths.setdefault(p, h)

    def real(self, path, depth=0):
        """Follow symlinks inside the universe: [(image path, host path)] ending at a file."""
        chain = []
        while depth < 16:
            h = self.paths.get(path)
            if h is None:
                # A parent dir may be the link (/lib64 -> ...): resolve component-wise.
                parent, base = os.path.dirname(path), os.path.basename(path)
                if parent in ("/", ""):
                    return None
                pr = self.real(parent, depth + 1)
                if not pr or pr[-1][0] == parent:
                    return None
                path = os.path.join(pr[-1][0], base)
                chain += pr
                depth += 1
                continue
            chain.append((path, h))
            if not os.path.islink(h):
                return chain
            t = os.readlink(h)
            path = os.path.normpath(t if t.startswith("/") else os.path.join(os.path.dirname(path), t))
            depth += 1
        return None


# ------------------------------------------------------------------------- the image

class Image:
    def __init__(self):
        self.entries = {}  # image path -> ("dir", mode) | ("file", mode, src) | ("slink", t) | ("nod", spec)

    def add_dir(self, path, mode=0o755):
        if path in ("/", ""):
            return
        self.add_dir(os.path.dirname(path))
        e = self.entries.get(path)
        if e is None or e[0] != "dir":
            self.entries[path] = ("dir", mode)

    def add_host(self, path, host):
        """A path copied from an unpacked package (or the spec dir): dir, file or symlink."""
        if any(c.isspace() for c in path):
            say(f"skipping {path!r}: guest_mkcpio specs cannot carry whitespace")
            return
        self.add_dir(os.path.dirname(path))
        st = os.lstat(host)
        if os.path.islink(host):
            self.entries[path] = ("slink", os.readlink(host))
        elif os.path.isdir(host):
            self.entries[path] = ("dir", st.st_mode & 0o7777)
        else:
            self.entries[path] = ("file", st.st_mode & 0o7777, host)

    def add_link(self, path, target):
        self.add_dir(os.path.dirname(path))
        self.entries[path] = ("slink", target)

    def resolves(self, path):
        """True when path is a file of the image, following its symlinks."""
        for _ in range(16):
            e = self.entries.get(path)
            if e is None:
                return False
            if e[0] != "slink":
                return e[0] == "file"
            t = e[1]
            path = os.path.normpath(t if t.startswith("/") else os.path.join(os.path.dirname(path), t))
        return False

    def spec_lines(self):
        for p in sorted(self.entries, key=lambda x: x.encode()):
            e = self.entries[p]
            if e[0] == "dir":
                yield f"dir {p} {e[1]:04o}"
            elif e[0] == "file":
                yield f"file {p} {e[1]:04o} {e[2]}"
            elif e[0] == "slink":
                yield f"slink {p} {e[1]}"
            else:
                yield f"nod {p} {e[1]}"

    def size(self):
        return sum(os.path.getsize(e[2]) for e in self.entries.values() if e[0] == "file")


def decompress_module(src, dst):
    cmd = {".xz": ["xz", "-dc"], ".zst": ["zstd", "-qdc"], ".gz": ["gzip", "-dc"]}
    ext = os.path.splitext(src)[1]
    if ext == ".ko":
        shutil.copyfile(src, dst)
    elif ext in cmd:
        with open(dst, "wb") as f:
            if subprocess.run(cmd[ext] + [src], stdout=f).returncode != 0:
                die(f"cannot decompress {src}")
    else:
        die(f"unknown module format {src}")
    os.chmod(dst, 0o644)


def extract_vmlinux(bz, dst):
    """The bzImage's LZ4 payload as the PVH ELF qemu loads directly (no decompression in the
    guest: ~0.3 s under TCG); absent when the kernel is packed otherwise."""
    if os.path.exists(dst):
        os.unlink(dst)
    if not shutil.which("lz4"):
        say("lz4 missing (apt-get install lz4): no PVH vmlinux, the bzImage is used")
        return
    with open(bz, "rb") as f:
        data = f.read()
    off = data.find(b"\x02\x21\x4c\x18")
    if off < 0:
        say(f"{bz} is not LZ4-compressed: no PVH vmlinux, the bzImage is used")
        return
    r = subprocess.run(["lz4", "-dc"], input=data[off:], capture_output=True)
    elf = r.stdout  # lz4 complains about the bytes after the payload; the ELF check is what counts
    with open(dst + ".tmp", "wb") as f:
        f.write(elf)
    notes = subprocess.run(["readelf", "-n", dst + ".tmp"], capture_output=True).stdout
    if elf[:4] == b"\x7fELF" and (b"PHYS32_ENTRY" in notes or b"0x00000012" in notes):
        os.rename(dst + ".tmp", dst)
    else:
        os.unlink(dst + ".tmp")
        say(f"no PVH ELF inside {bz}: the bzImage is used")


class Builder:
    def __init__(self, args):
        self.a = args
        self.archive = Archive(args.cache)
        self.missing_libs = set()

    def stage(self, spec, img, outdir):
        """Adds spec's layer (after its base's) to img."""
        if spec["_base"]:
            self.stage(spec["_base"], img, outdir)
        name = spec["_name"]
        pkgs = spec.get("packages", [])
        closure = self.archive.resolve(pkgs) if pkgs else []
        listed = set(pkgs)
        dl = [(n, v) for n, v in closure if n in listed or n not in SKIP_DOWNLOAD]
        roots = self.archive.fetch(dl)
        universe = Universe(roots.values())
        drop = DROP_ALWAYS + spec.get("drop", [])
        keep = spec.get("keep", [])
        elves = []
        for n in pkgs:
            for p, h in sorted(walk(roots[n]).items()):
                if matches(p, drop) or (keep and not matches(p, keep)) or os.path.isdir(h) and not os.path.islink(h):
                    continue
                img.add_host(p, h)
                if not os.path.islink(h):
                    elves.append((p, h))
        for g in spec.get("from_deps", []):
            hits = [p for p in universe.paths if matches(p, [g])]
            if not hits:
                die(f"{name}: from_deps '{g}' matches nothing in the packages' closure")
            for p in sorted(hits):
                h = universe.paths[p]
                if not os.path.isdir(h) or os.path.islink(h):
                    if not matches(p, drop):
                        img.add_host(p, h)
                        if not os.path.islink(h):
                            elves.append((p, h))
        self.libraries(elves, universe, img)
        # Files shipped with the spec (configs, wrapper scripts), laid over the packages'.
        fdir = os.path.join(spec["_dir"], spec.get("files", "files"))
        if os.path.isdir(fdir):
            for p, h in sorted(walk(fdir).items()):
                if os.path.isdir(h) and not os.path.islink(h):
                    img.add_dir(p, 0o755)
                else:
                    img.add_host(p, h)
        for path, src in sorted(spec.get("concat", {}).items()):
            hits = sorted((p for p in universe.paths if fnmatch.fnmatchcase(p, src)), key=str.encode)
            if not hits:
                die(f"{name}: concat source '{src}' matches nothing")
            tmp = os.path.join(outdir, ".stage", path.lstrip("/"))
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            with open(tmp, "wb") as f:
                for p in hits:
                    with open(universe.paths[p], "rb") as s:
                        f.write(s.read())
            os.chmod(tmp, 0o644)
            img.add_host(path, tmp)
        for d in spec.get("dirs", []):
            img.add_dir(d, 0o1777 if d in ("/tmp", "/var/tmp") else 0o755)
        for path, target in sorted(spec.get("links", {}).items()):
            img.add_link(path, target)
        for d in spec.get("pycompile", []):
            self.pycompile(d, img, outdir)
        if spec.get("kernel"):
            self.kernel(spec, img, outdir)

    def libraries(self, elves, universe, img):
        todo = list(elves)
        done = set()
        while todo:
            p, h = todo.pop()
            if p in done:
                continue
            done.add(p)
            d = elf_deps(h)
            if not d:
                continue
            interp, needed, runpath = d
            wants = [interp] if interp else []
            origin = os.path.dirname(p)
            dirs = [os.path.normpath(r.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
                    for r in runpath if r] + ARCH_LIBDIRS
            for so in needed:
                found = None
                for dd in dirs:
                    cand = os.path.join(dd, so)
                    if cand in img.entries or universe.real(cand):
                        found = cand
                        break
                if found:
                    wants.append(found)
                elif not any(os.path.basename(x) == so for x in img.entries):
                    # e.g. the JVM's libraries need libjvm.so, which java has loaded by path
                    self.missing_libs.add(f"{so} (for {p})")
            for w in wants:
                chain = universe.real(w)
                if not chain:
                    if w not in img.entries:
                        self.missing_libs.add(f"{w} (for {p})")
                    continue
                for cp, ch in chain:
                    if cp not in img.entries or img.entries[cp][0] == "dir":
                        img.add_host(cp, ch)
                    if not os.path.islink(ch):
                        todo.append((cp, ch))

    def pycompile(self, d, img, outdir):
        """Hash-checked bytecode (valid whatever the fixed mtimes) for every .py under d, compiled
        by this builder's interpreter, which must be the same minor version as the image's."""
        ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if ver not in d:
            say(f"not compiling {d}: this builder runs {ver}")
            return
        stage = os.path.join(outdir, ".stage-pyc")
        srcs = sorted(p for p, e in img.entries.items()
                      if e[0] == "file" and p.startswith(d + "/") and p.endswith(".py"))
        os.environ["SOURCE_DATE_EPOCH"] = "0"
        tag = sys.implementation.cache_tag
        for p in srcs:
            e = img.entries[p]
            pyc = os.path.join(os.path.dirname(p), "__pycache__",
                               os.path.basename(p)[:-3] + f".{tag}.pyc")
            out = stage + pyc
            with open(e[2], "rb") as f:
                want = importlib.util.source_hash(f.read())
            have = b""
            if os.path.exists(out):
                with open(out, "rb") as f:
                    have = f.read(16)[8:16]
            if have != want:  # none yet, or the package's source changed since
                os.makedirs(os.path.dirname(out), exist_ok=True)
                try:
                    py_compile.compile(e[2], cfile=out, dfile=p, doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                except py_compile.PyCompileError:
                    continue  # e.g. a lib2to3 test fixture written in Python 2: no bytecode
                os.chmod(out, 0o644)
            img.add_host(pyc, out)

    def kernel(self, spec, img, outdir):
        kpkg = self.archive.kernel_package(spec["kernel"])
        ver = self.archive.resolve([kpkg])
        ver = [x for x in ver if x[0] == kpkg]
        root = self.archive.fetch(ver)[kpkg]
        vmlinuz = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))
        mods = glob.glob(os.path.join(root, "lib", "modules", "*"))
        if not vmlinuz or not mods:
            die(f"{kpkg} has no /boot/vmlinuz-* or /lib/modules")
        shutil.copyfile(vmlinuz[0], os.path.join(outdir, "vmlinuz.tmp"))
        os.rename(os.path.join(outdir, "vmlinuz.tmp"), os.path.join(outdir, "vmlinuz"))
        extract_vmlinux(os.path.join(outdir, "vmlinuz"), os.path.join(outdir, "vmlinux"))
        with open(os.path.join(outdir, "kernel-release"), "w") as f:
            f.write(os.path.basename(vmlinuz[0])[len("vmlinuz-"):] + "\n")
        stage = os.path.join(outdir, ".stage-modules")
        os.makedirs(stage, exist_ok=True)
        img.add_dir("/lib/modules/nubo")
        for m in spec.get("modules", []):
            hits = []
            for pat in (m, m.replace("_", "-")):
                hits += glob.glob(os.path.join(mods[0], "kernel", "**", pat + ".ko*"), recursive=True)
            if not hits:
                die(f"module {m} not in {kpkg}")
            dst = os.path.join(stage, m + ".ko")
            decompress_module(hits[0], dst)
            img.add_host(f"/lib/modules/nubo/{m}.ko", dst)

    def build(self, name):
        spec = load_spec(self.a.specs, name)
        outdir = os.path.join(self.a.out, name)
        os.makedirs(outdir, exist_ok=True)
        shutil.rmtree(os.path.join(outdir, ".stage"), ignore_errors=True)
        img = Image()
        # The skeleton every runtime boots with: our /init and the device nodes the kernel
        # needs before devtmpfs is mounted.
        for d in ("/dev", "/etc", "/proc", "/sys", "/run", "/usr/bin", "/usr/sbin", "/bin", "/sbin",
                  "/usr/local/bin", "/var"):
            img.add_dir(d, 0o555 if d in ("/proc", "/sys") else 0o755)
        img.add_dir("/root", 0o700)
        img.add_dir("/tmp", 0o1777)
        img.entries["/dev/console"] = ("nod", "0600 c 5 1")
        img.entries["/dev/null"] = ("nod", "0666 c 1 3")
        img.entries["/init"] = ("file", 0o755, os.path.abspath(self.a.init))
        self.stage(spec, img, outdir)
        if self.missing_libs:
            # Optional plugins may need libraries outside the closure; the program itself must not.
            say(f"{name}: {len(self.missing_libs)} shared object(s) not found: " +
                "; ".join(sorted(self.missing_libs)[:8]))
        cmd = self.effective(spec, "cmd", [])
        if cmd and cmd[0].startswith("/") and not img.resolves(cmd[0]):
            die(f"{name}: cmd {cmd[0]} is not in the image (or a link to nothing)")
        lines = "\n".join(img.spec_lines()) + "\n"
        r = subprocess.run([self.a.mkcpio, os.path.join(outdir, "initrd.cpio")], input=lines.encode())
        if r.returncode != 0:
            die("guest_mkcpio failed")
        with open(os.path.join(outdir, "contents.txt"), "w") as f:
            for p in sorted(img.entries, key=str.encode):
                f.write(p + "\n")
        args = []
        for c in self.effective(spec, "cmd", []):
            args += ["--arg", c]
        if self.effective(spec, "user", ""):
            args += ["--user", self.effective(spec, "user", "")]
        for k, v in sorted(self.effective(spec, "env", {}).items()):
            args += ["--env", f"{k}={v}"]
        labels = {"org.nubo.runtime": name, "org.nubo.runtime.version": spec.get("version", "")}
        if spec.get("ports"):
            labels["org.nubo.runtime.ports"] = ",".join(str(p) for p in spec["ports"])
        if spec.get("answers"):
            labels["org.nubo.runtime.answers"] = ",".join(spec["answers"])
        if spec.get("memory_mb"):
            labels["org.nubo.runtime.memory_mb"] = str(spec["memory_mb"])
        chain, sp = [], spec
        while sp is not None:
            chain.append(sp)
            sp = sp["_base"]
        for sp in reversed(chain):  # base's labels first, the runtime's own win
            labels.update(sp.get("labels", {}))
        for k, v in sorted(labels.items()):
            if v:
                args += ["--label", f"{k}={v}"]
        with open(os.path.join(outdir, "pkg.args"), "wb") as f:
            f.write(b"".join(a.encode() + b"\0" for a in args))
        with open(os.path.join(outdir, "tags"), "w") as f:
            f.write("\n".join(spec["tags"]) + "\n")
        size = os.path.getsize(os.path.join(outdir, "initrd.cpio"))
        say(f"{name} -> {outdir}/initrd.cpio ({size / 1048576:.1f} MiB, {len(img.entries)} entries)")

    @staticmethod
    def effective(spec, key, default):
        while spec is not None:
            if key in spec:
                return spec[key]
            spec = spec["_base"]
        return default


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--mkcpio", required=True)
    ap.add_argument("--list", action="store_true", help="print the runtimes the specs define")
    ap.add_argument("name", nargs="?")
    a = ap.parse_args()
    if a.list:
        for d in sorted(os.listdir(a.specs)):
            if os.path.isfile(os.path.join(a.specs, d, "runtime.toml")):
                print(d)
        return
    if not a.name:
        ap.error("name a runtime")
    Builder(a).build(a.name)


if __name__ == "__main__":
    main()
