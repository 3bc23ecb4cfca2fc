"""The project's Docker images, built where no image registry answers as well as where one does.

    python -m deploy.docker.images [--force] [NAME ...]      (normally: ./ucj docker-images)

NAME: ucj-kafka, ucj-postgres, ucj-app (default: all three). Each Dockerfile starts
`FROM ${BASE_IMAGE}`, Debian bookworm:

- `debian:bookworm-slim` when it is here or can be pulled (the usual way, where a registry
  answers);
- otherwise `ucj-debian:bookworm`, made once from `debootstrap --variant=minbase bookworm` and
  the Debian mirror apt already uses, then `docker import`;
- or UCJ_BASE_IMAGE, when set.

Packages come from Debian (Java, PostgreSQL, Python) and PyPI, fetched by `docker build
--network host` (the classic builder, DOCKER_BUILDKIT=0), so a build needs the network the host
has, and no registry. An image is rebuilt only when its content hash (Dockerfile, build context,
base image id) differs from the `ucj.content-hash` label of the image already there: a second run
takes about a second. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "docker"
DEBIAN_SLIM = "debian:bookworm-slim"
LOCAL_BASE = "ucj-debian:bookworm"
HASH_LABEL = "ucj.content-hash"
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def say(msg: str) -> None:
    print(f"[docker-images] {msg}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, quiet: bool = False,
           timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], check=check, text=True, timeout=timeout,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.PIPE if quiet else None)


def image_id(name: str) -> str | None:
    res = docker("image", "inspect", "--format", "{{.Id}}", name, check=False, quiet=True)
    return res.stdout.strip() if res.returncode == 0 else None


def image_label(name: str, label: str) -> str:
    res = docker("image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}',
                 name, check=False, quiet=True)
    return res.stdout.strip() if res.returncode == 0 else ""


# ------------------------------------------------------------------------------- Base image

def debian_mirror() -> str:
    """The Debian mirror apt already uses (the first source of `main` for bookworm itself)."""
    if os.environ.get("UCJ_DEBIAN_MIRROR"):
        return os.environ["UCJ_DEBIAN_MIRROR"]
    apt = Path("/etc/apt")
    for f in sorted(apt.glob("sources.list.d/*.sources")):  # deb822
        for stanza in f.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "bookworm" in fields.get("Suites", "").split() and \
                    "main" in fields.get("Components", "").split():
                return fields["URIs"].split()[0]
    lists = [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]
    for f in lists:
        if f.is_file():
            for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s+.*\bmain\b",
                                 f.read_text(), re.M):
                return m.group(1)
    return "http://deb.debian.org/debian"


def debootstrap_base(name: str = LOCAL_BASE) -> None:
    if not shutil.which("debootstrap"):
        raise RuntimeError("no registry answers and debootstrap is missing "
                           "(apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise RuntimeError("debootstrap needs root")
    mirror = debian_mirror()
    # Outside the repository: tools that walk the tree must not meet a mounted /proc.
    with tempfile.TemporaryDirectory(prefix="ucj-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        try:
            _debootstrap_and_import(rootfs, mirror, name)
        finally:
            _unmount_under(rootfs)


def _unmount_under(root: Path) -> None:
    """What a failed debootstrap may leave mounted (proc, sys), deepest first."""
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _debootstrap_and_import(rootfs: Path, mirror: str, name: str) -> None:
    t0 = time.monotonic()
    say(f"debootstrap --variant=minbase bookworm from {mirror}")
    res = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"debootstrap failed ({res.returncode}):\n{res.stdout[-3000:]}"
                           f"{res.stderr[-2000:]}")
    # What debian:bookworm-slim does not carry either: the downloaded packages and lists.
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (rootfs / d).glob("*"):
            if p.is_file():
                p.unlink()
    say(f"debootstrap: {time.monotonic() - t0:.1f} s")
    t1 = time.monotonic()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                           stdout=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "-c", 'CMD ["bash"]', "-c",
                          f"LABEL org.opencontainers.image.source=debootstrap:{mirror}",
                          "-", name], stdin=tar.stdout, capture_output=True, text=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise RuntimeError(f"docker import failed: {imp.stderr}")
    say(f"docker import {name}: {time.monotonic() - t1:.1f} s")


def base_image() -> str:
    """The image every Dockerfile starts FROM (see the module's documentation)."""
    if os.environ.get("UCJ_BASE_IMAGE"):
        return os.environ["UCJ_BASE_IMAGE"]
    if image_id(DEBIAN_SLIM):
        return DEBIAN_SLIM
    if image_id(LOCAL_BASE):
        return LOCAL_BASE
    t0 = time.monotonic()
    try:
        pulled = docker("pull", "-q", DEBIAN_SLIM, check=False, quiet=True, timeout=180)
        if pulled.returncode == 0:
            say(f"pulled {DEBIAN_SLIM}: {time.monotonic() - t0:.1f} s")
            return DEBIAN_SLIM
        why = (pulled.stderr.strip().splitlines() or ["?"])[-1]
    except subprocess.TimeoutExpired:
        why = "timed out"
    say(f"no {DEBIAN_SLIM} from a registry ({why[:160]}): making {LOCAL_BASE} locally")
    debootstrap_base()
    return LOCAL_BASE


# ------------------------------------------------------------------------------------ Images

@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: Path
    files: Callable[[], dict[str, Path]]  # path in the build context -> file on this machine


def _tree(root: Path, rel: str) -> dict[str, Path]:
    found = {}
    for p in sorted((root / rel).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            found[str(p.relative_to(root))] = p
    return found


def _kafka_files() -> dict[str, Path]:
    from deploy.local.kafka import KAFKA_CONF, ensure_kafka_jars

    libs = ensure_kafka_jars()
    files = {f"libs/{p.name}": p for p in sorted(libs.glob("*.jar"))}
    files |= {n: KAFKA_CONF / n for n in ("server.properties", "log4j2.properties")}
    files |= {n: HERE / n for n in ("kafka-entrypoint.sh", "kafka-healthcheck.sh")}
    return files


def _postgres_files() -> dict[str, Path]:
    return {n: HERE / n for n in ("postgres-entrypoint.sh", "init-databases.sql")}


def runtime_requirements() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def wheelhouse() -> Path:
    """The services' Python packages as wheels for CPython 3.11 on Debian bookworm, fetched on
    this machine by its own pip (its index, proxy and certificates): the image installs them
    with --no-index, so its build reaches only the Debian mirror. Cached per lock."""
    reqs = runtime_requirements()
    key = hashlib.sha256("\n".join([*reqs, (REPO / "constraints.txt").read_text()]).encode())
    home = REPO / ".run" / "docker" / "wheels"
    target = home / key.hexdigest()[:16]
    if (target / ".complete").is_file():
        return target
    shutil.rmtree(home, ignore_errors=True)  # older locks' wheels
    tmp = home / "tmp"
    tmp.mkdir(parents=True)
    # Bookworm has glibc 2.36: any manylinux wheel up to that, whatever this machine's glibc.
    arch = platform.machine()
    platforms = [f"manylinux_2_{v}_{arch}" for v in range(36, 16, -1)]
    platforms += [f"manylinux2014_{arch}"] + ([f"manylinux2010_{arch}", f"manylinux1_{arch}"]
                                              if arch == "x86_64" else [])
    t0 = time.monotonic()
    argv = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
            *(a for p in platforms for a in ("--platform", p)),
            "-c", str(REPO / "constraints.txt"), "-d", str(tmp), *reqs]
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"pip download failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
    (tmp / ".complete").write_text("\n".join(reqs) + "\n")
    tmp.rename(target)
    say(f"wheels for ucj-app: {time.monotonic() - t0:.1f} s")
    return target


def _app_files() -> dict[str, Path]:
    files = {n: REPO / n for n in ("pyproject.toml", "constraints.txt")}
    for d in ("shared", "services", "deploy"):
        files |= _tree(REPO, d)
    files |= {f"wheels/{p.name}": p for p in sorted(wheelhouse().glob("*.whl"))}
    return files


IMAGES = (
    ImageSpec("ucj-kafka", HERE / "kafka.Dockerfile", _kafka_files),
    ImageSpec("ucj-postgres", HERE / "postgres.Dockerfile", _postgres_files),
    ImageSpec("ucj-app", HERE / "Dockerfile", _app_files),
)


def content_hash(spec: ImageSpec, files: dict[str, Path], base_id: str) -> str:
    h = hashlib.sha256()
    h.update(f"base {base_id}\n".encode())
    h.update(spec.dockerfile.read_bytes())
    for rel, path in sorted(files.items()):
        h.update(f"\0{rel}\0{path.stat().st_mode & 0o111}\0".encode())
        if rel.startswith(("libs/", "wheels/")):  # versioned names: the size will do
            h.update(str(path.stat().st_size).encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


def build(spec: ImageSpec, base: str, *, force: bool = False) -> bool:
    """Build one image unless an image with the same content hash is there; True if built."""
    files = spec.files()
    base_id = image_id(base) or base
    want = content_hash(spec, files, base_id)
    if not force and image_label(spec.name, HASH_LABEL) == want:
        say(f"{spec.name}: up to date ({want[:12]})")
        return False
    t0 = time.monotonic()
    work = REPO / ".run" / "docker" / "build"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-", dir=work) as tmp:
        ctx = Path(tmp)
        for rel, src in files.items():  # exactly the hashed files, nothing else
            dst = ctx / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        shutil.copy2(spec.dockerfile, ctx / "Dockerfile")
        args = ["build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                "--label", f"{HASH_LABEL}={want}", "-t", spec.name]
        for var in PROXY_VARS:
            if os.environ.get(var):
                args += ["--build-arg", var]
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        res = subprocess.run(["docker", *args, str(ctx)], env=env, capture_output=True,
                             text=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker build {spec.name} failed:\n{res.stdout[-4000:]}"
                           f"{res.stderr[-4000:]}")
    say(f"{spec.name}: built in {time.monotonic() - t0:.1f} s ({want[:12]})")
    return True


def build_all(names: Iterable[str] = (), *, force: bool = False) -> None:
    wanted = set(names) or {s.name for s in IMAGES}
    unknown = wanted - {s.name for s in IMAGES}
    if unknown:
        raise RuntimeError(f"unknown image(s): {', '.join(sorted(unknown))}")
    t0 = time.monotonic()
    base = base_image()
    say(f"base image: {base}")
    built = [build(s, base, force=force) for s in IMAGES if s.name in wanted]
    if any(built):  # the images the rebuilds replaced
        docker("image", "prune", "-f", "--filter", f"label={HASH_LABEL}", check=False,
               quiet=True)
    say(f"done in {time.monotonic() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.docker.images", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args(argv)
    if not shutil.which("docker"):
        print("error: the docker CLI is missing", file=sys.stderr)
        return 1
    if docker("version", "--format", "{{.Server.Version}}", check=False, quiet=True).returncode:
        print("error: no Docker engine answers (deploy/docker/engine.sh start)", file=sys.stderr)
        return 1
    try:
        build_all(args.names, force=args.force)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
