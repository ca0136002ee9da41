"""Which base images compose mode uses, and the wheelhouse the app image installs from.

A host that reaches Docker Hub keeps the compose file's defaults (``python:3.11-slim``,
``postgres:16``) unchanged. A host that does not gets local images from Debian's packages
(``build_local_images.sh``, cached by tag) and a wheelhouse of ``requirements.lock`` built on the
host, because ``pip`` in a build container has neither the network nor the host's CA bundle.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx

from scripts.harness import REPO_ROOT
from scripts.topology.compose import ComposeImages

BUILD_LOCAL = REPO_ROOT / "scripts" / "compose" / "build_local_images.sh"
WHEELHOUSE = REPO_ROOT / ".wheelhouse"
LOCK = REPO_ROOT / "requirements.lock"
REGISTRY_PROBE = "https://registry-1.docker.io/v2/"
# The project's build backend and what its editable builds need: the image installs the project
# itself from the same wheelhouse.
BUILD_BACKEND = ("hatchling==1.33.0", "editables==0.5")


class ImageError(RuntimeError):
    pass


def registry_reachable(timeout_s: float = 5.0) -> bool:
    """Docker Hub answers at all (its API says 401 to anonymous requests; any answer will do)."""
    try:
        httpx.get(REGISTRY_PROBE, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def local_images(log_path: Path) -> ComposeImages:
    """Build (or reuse) the local base images; returns the build arguments they are passed as."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            [str(BUILD_LOCAL)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, timeout=900, check=False
        )
    if result.returncode != 0:
        raise ImageError(f"build_local_images.sh failed (exit {result.returncode}); see {log_path}")
    args = dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)
    return ComposeImages(postgres=args["POSTGRES_IMAGE"], python_base=args["PYTHON_BASE_IMAGE"])


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes() + " ".join(BUILD_BACKEND).encode()).hexdigest()


def ensure_wheelhouse(pip_python: Path, log_path: Path) -> Path:
    """``.wheelhouse/`` holding every wheel of the lock (and the build backend), rebuilt when the lock changes."""
    stamp = WHEELHOUSE / ".lock.sha256"
    if stamp.exists() and stamp.read_text().strip() == lock_digest():
        return WHEELHOUSE
    WHEELHOUSE.mkdir(exist_ok=True)
    for stale in WHEELHOUSE.glob("*.whl"):
        stale.unlink()
    argv = [str(pip_python), "-m", "pip", "wheel", "--quiet", "-w", str(WHEELHOUSE), "-r", str(LOCK), *BUILD_BACKEND]
    with log_path.open("ab") as log:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=900, check=False)
    if result.returncode != 0:
        raise ImageError(f"`pip wheel` failed (exit {result.returncode}); see {log_path}")
    stamp.write_text(lock_digest() + "\n")
    return WHEELHOUSE


def pip_python() -> Path:
    """A Python with pip: the bootstrap ``.venv`` (the Makefile makes it with ``venv``), else this one."""
    bootstrap = REPO_ROOT / ".venv" / "bin" / "python"
    return bootstrap if bootstrap.exists() else Path(sys.executable)
