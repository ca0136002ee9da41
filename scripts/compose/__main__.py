"""Compose mode end to end, as CI runs it (``nox -s compose``).

    python -m scripts.compose ci                      # engine, images, CI subset in compose mode, verify
    python -m scripts.compose ci --images local -- --gate eg8_1_topology

1. A Docker engine: the one that answers, else ``dockerd`` started here with this machine class's
   flags (root only) and stopped at the end; an engine that was already running is left alone.
2. Images: ``--images auto`` keeps the registry's (python:3.11-slim, postgres:16) when Docker Hub
   answers, else builds local ones from Debian's packages plus a wheelhouse of the lock.
3. The closure pack's ``--ci-subset`` with ``--topology compose`` (arguments after ``--`` go to it),
   then ``sha256sum -c manifest.sha256`` in its artifact directory.
4. Fault parity (skip with ``ci --no-faults``): ``docker kill`` of the worker container, then of the api
   container, under webhook load, on a fresh project from the same images; nothing acknowledged may
   be lost or stored twice (scripts/faults/run_faults.py ``--topology compose``, the native
   scenarios' verdict and negative control) -> ``--faults-dir``/faults_summary.json. It fails if
   the faults' api container ran another image than the gates' (``--no-build`` reuses a tag, which
   another checkout could have rebuilt meanwhile).

Ctrl-C or SIGTERM: the closure pack tears its containers down (``down -v``) and this waits for it
before stopping an engine it started. Exit code: the closure pack's, else 2 for a host problem.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from scripts import interrupts
from scripts.compose.engine import EngineError, engine_running
from scripts.compose.images import ImageError, ensure_wheelhouse, local_images, pip_python, registry_reachable
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, read_json_object
from scripts.topology.compose import ComposeImages

CLOSURE_PACK = REPO_ROOT / "scripts" / "phase8" / "run_phase8_closure_pack.py"
FAULTS = REPO_ROOT / "scripts" / "faults" / "run_faults.py"
PROBE = "p8_topology_probe.json"  # each run's record of its containers, written again before teardown
CHILD_TEARDOWN_S = 180.0


def say(message: str) -> None:
    print(f"[compose] {message}", file=sys.stderr, flush=True)


def choose_images(mode: str, work_dir: Path) -> ComposeImages:
    if mode == "registry" or (mode == "auto" and registry_reachable()):
        say("images: the registry's (compose file defaults)")
        return ComposeImages()
    say("images: local, from Debian's packages (no registry); wheelhouse of requirements.lock")
    images = local_images(work_dir / "images.log")
    ensure_wheelhouse(pip_python(), work_dir / "wheelhouse.log")
    return images


def closure_pack_argv(args: argparse.Namespace, images: ComposeImages) -> list[str]:
    argv = [sys.executable, str(CLOSURE_PACK), "--ci-subset", "--topology", "compose"]
    argv += ["--topology-name", args.topology_name, "--artifact-dir", str(args.artifact_dir)]
    return [*argv, *image_args(images), *args.closure_args]


def image_args(images: ComposeImages) -> list[str]:
    argv = []
    if images.postgres:
        argv += ["--postgres-image", images.postgres]
    if images.python_base:
        argv += ["--python-base-image", images.python_base]
    return argv


def app_image_id(probe_path: Path) -> str | None:
    """The image the api container ran, as a topology probe recorded it."""
    containers = read_json_object(probe_path).get("compose", {}).get("containers", {})
    image_id = containers.get("api", {}).get("image_id")
    return str(image_id) if image_id else None


def run_faults(args: argparse.Namespace, images: ComposeImages) -> int:
    """The docker kill scenarios, judged only if they ran on the image the gates just passed on."""
    summary, probe = args.faults_dir / "faults_summary.json", args.faults_dir / "compose" / PROBE
    summary.unlink(missing_ok=True)  # a failure before it is written must not show an older run's
    probe.unlink(missing_ok=True)
    code = run_child(faults_argv(args, images))
    gated, faulted = app_image_id(args.artifact_dir / PROBE), app_image_id(probe)
    if code == 0 and (gated is None or faulted != gated):
        say(f"the faults ran on image {faulted}, the gates on {gated}: not the same build")
        return int(ExitCode.GATE_FAILED)
    say(f"docker kill faults: exit {code}; {summary}")
    return code


def faults_argv(args: argparse.Namespace, images: ComposeImages) -> list[str]:
    """The crash scenarios on the image the closure pack just built (``--no-build``)."""
    argv = [sys.executable, str(FAULTS), "--topology", "compose", "--no-build", "--artifact-dir", str(args.faults_dir)]
    return [*argv, *image_args(images)]


def run_child(argv: list[str]) -> int:
    child = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    try:
        return child.wait()
    except KeyboardInterrupt:
        with interrupts.shielded():  # the child's teardown (`down -v`) must finish before the engine stops
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=CHILD_TEARDOWN_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        raise


def verify_manifest(artifact_dir: Path) -> bool:
    result = subprocess.run(
        ["sha256sum", "--quiet", "-c", "manifest.sha256"], cwd=artifact_dir, stdin=subprocess.DEVNULL, check=False
    )
    return result.returncode == 0


def ci(args: argparse.Namespace) -> int:
    work_dir: Path = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    with interrupts.handling_signals():
        try:
            with engine_running(work_dir / "dockerd.log") as started:
                say("engine: started dockerd for this run" if started else "engine: the one already running")
                images = choose_images(args.images, work_dir)
                code = run_child(closure_pack_argv(args, images))
                if code != 0:
                    return code
                if not verify_manifest(args.artifact_dir):
                    say(f"manifest verification failed in {args.artifact_dir}")
                    return int(ExitCode.GATE_FAILED)
                say(f"CI subset passed; manifest verified in {args.artifact_dir}")
                return 0 if args.no_faults else run_faults(args, images)
        except (EngineError, ImageError) as exc:
            say(f"error: {exc}")
            return int(ExitCode.USAGE_OR_ENVIRONMENT)
        except KeyboardInterrupt:
            say("interrupted: the running step took its containers down")
            return int(ExitCode.GATE_FAILED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.compose",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "ci",
        help="engine, images, the CI subset in compose mode, manifest check",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--images",
        choices=("auto", "registry", "local"),
        default="auto",
        help="auto: the registry's when Docker Hub answers, else local ones built from Debian's packages",
    )
    run.add_argument("--artifact-dir", type=Path, default=REPO_ROOT / "artifacts" / "b07-phase8-compose")
    run.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / "artifacts" / "compose",
        help="dockerd.log, images.log and wheelhouse.log go here",
    )
    run.add_argument("--topology-name", default="phase8-compose", help="run name (state in .run/<name>.json)")
    run.add_argument("--no-faults", action="store_true", help="skip the docker kill scenarios after the CI subset")
    run.add_argument("--faults-dir", type=Path, default=REPO_ROOT / "artifacts" / "compose-faults")
    run.add_argument("closure_args", nargs="*", help="after --: more arguments for the closure pack")
    args = parser.parse_args(argv)
    args.artifact_dir = args.artifact_dir.resolve()
    args.work_dir = args.work_dir.resolve()
    args.faults_dir = args.faults_dir.resolve()
    return ci(args)


if __name__ == "__main__":
    sys.exit(main())
