"""Build the sandbox image: `sandbox/Dockerfile` where a registry answers, else offline.

Two paths, chosen automatically (`mode="auto"`) and reported back:
- "dockerfile": `docker build` of `sandbox/Dockerfile` (FROM python:3.11-slim) — the normal
  path for users with Docker Hub or a mirror.
- "offline": `debootstrap --variant=minbase --include=python3 bookworm ROOTFS` from the
  Debian mirror apt already uses, then `tar -C ROOTFS -c . | docker import -`. Needs root and
  the `debootstrap` package (installed with apt-get when missing and root).
- "present": the image already exists and `force` is False: nothing is built.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_IMAGE = "score-sandbox:latest"
DOCKERFILE_DIR = Path(__file__).resolve().parent
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BuildMode = Literal["auto", "dockerfile", "offline"]
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "LABEL org.score.sandbox=1",
    'CMD ["sleep", "infinity"]',
)


@dataclass(frozen=True)
class BuildReport:
    image: str
    path: str  # present | dockerfile | offline
    seconds: float
    detail: str  # why this path was taken


def image_exists(image: str = DEFAULT_IMAGE) -> bool:
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return out.returncode == 0


def build_image(image: str = DEFAULT_IMAGE, mode: BuildMode = "auto", force: bool = False,
                log=print) -> BuildReport:
    """Make sure `image` exists; build it by the path `mode` allows. Raises on failure."""
    t0 = time.monotonic()
    if not force and image_exists(image):
        return BuildReport(image, "present", time.monotonic() - t0, "image already exists")
    if mode not in ("auto", "dockerfile", "offline"):
        raise ValueError(f"unknown build mode {mode!r}")
    detail = f"mode={mode}"
    if mode in ("auto", "dockerfile"):
        ok, err = _build_dockerfile(image, log)
        if ok:
            return BuildReport(image, "dockerfile", time.monotonic() - t0, "registry reachable")
        if mode == "dockerfile":
            raise RuntimeError(f"docker build of {DOCKERFILE_DIR / 'Dockerfile'} failed:\n{err}")
        detail = f"Dockerfile build failed (no registry?): {err.strip().splitlines()[-1:]}"
        log(f"sandbox build: {detail}; falling back to the offline debootstrap path")
    _build_offline(image, log)
    return BuildReport(image, "offline", time.monotonic() - t0, detail)


def _build_dockerfile(image: str, log) -> tuple[bool, str]:
    log(f"sandbox build: docker build -t {image} {DOCKERFILE_DIR}")
    out = subprocess.run(
        ["docker", "build", "-q", "-t", image, str(DOCKERFILE_DIR)],
        capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    return out.returncode == 0, out.stderr + out.stdout


def _debian_mirror() -> str:
    """The mirror apt already uses (deb822 or one-line sources), else deb.debian.org."""
    if os.environ.get("SCORE_DEBIAN_MIRROR"):
        return os.environ["SCORE_DEBIAN_MIRROR"]
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if line.startswith("URIs:") and len(parts) > 1 and "security" not in parts[1]:
                return parts[1]
            if line.startswith("deb ") and len(parts) > 1 and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return DEFAULT_MIRROR


def _build_offline(image: str, log) -> None:
    if os.geteuid() != 0:
        raise RuntimeError("offline sandbox build (debootstrap) needs root; or build "
                           f"{DOCKERFILE_DIR / 'Dockerfile'} where a registry is reachable")
    if shutil.which("debootstrap") is None:
        log("sandbox build: installing debootstrap with apt-get")
        subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], check=True,
                       capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    mirror = _debian_mirror()
    with tempfile.TemporaryDirectory(prefix="score-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"sandbox build: debootstrap --variant=minbase --include=python3 bookworm ({mirror})")
        out = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs), mirror],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        log(f"sandbox build: docker import -> {image}")
        changes = [arg for c in IMPORT_CHANGES for arg in ("--change", c)]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", *changes, "-", image], stdin=tar.stdout,
                             capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise RuntimeError(f"docker import failed: {imp.stderr}")
