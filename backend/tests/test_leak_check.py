"""scripts/ci/leak_check.py finds what a run left behind (and, as the control, nothing on a clean run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.ci import leak_check


def test_clean_run_passes(tmp_path: Path) -> None:
    checkout, temp = tmp_path / "checkout", tmp_path / "tmp"
    checkout.mkdir(), temp.mkdir()
    snapshot = tmp_path / "snapshot.json"
    (temp / "attrib-pg-older").mkdir()  # an earlier run's leftover is not this run's leak
    args = ["--checkout", str(checkout), "--temp-dir", str(temp)]
    assert leak_check.main(["snapshot", str(snapshot), *args]) == 0
    assert leak_check.main(["check", str(snapshot), *args]) == 0


def test_a_leaked_process_and_data_directory_fail_the_run(tmp_path: Path) -> None:
    checkout, temp = tmp_path / "checkout", tmp_path / "tmp"
    checkout.mkdir(), temp.mkdir()
    snapshot = tmp_path / "snapshot.json"
    args = ["--checkout", str(checkout), "--temp-dir", str(temp)]
    leak_check.main(["snapshot", str(snapshot), *args])
    orphan = subprocess.Popen(["sleep", "60"], cwd=checkout)  # started "from the checkout"
    leaked = temp / "attrib-pg-x1y2" / "data"
    leaked.mkdir(parents=True)
    (leaked / "postmaster.opts").write_text(f"{checkout}/.nox/tests/bin/postgres -D {leaked}\n")
    elsewhere = temp / "attrib-pg-other" / "data"  # another checkout's live cluster: not ours to judge
    elsewhere.mkdir(parents=True)
    (elsewhere / "postmaster.opts").write_text(f"{tmp_path}/other-checkout/.nox/tests/bin/postgres -D {elsewhere}\n")
    try:
        assert leak_check.main(["check", str(snapshot), *args]) == 1
        assert orphan.wait(timeout=10) != 0  # stopped after being reported
        assert not (temp / "attrib-pg-x1y2").exists()
        assert elsewhere.exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_a_process_running_before_the_snapshot_is_not_the_runs(tmp_path: Path) -> None:
    checkout, temp = tmp_path / "checkout", tmp_path / "tmp"
    checkout.mkdir(), temp.mkdir()
    snapshot = tmp_path / "snapshot.json"
    args = ["--checkout", str(checkout), "--temp-dir", str(temp)]
    earlier = subprocess.Popen(["sleep", "60"], cwd=checkout)  # a developer's process in the checkout
    try:
        leak_check.main(["snapshot", str(snapshot), *args])
        assert leak_check.main(["check", str(snapshot), *args]) == 0
        assert earlier.poll() is None  # and it was not stopped
    finally:
        earlier.kill()
        earlier.wait()


def test_a_leaked_network_namespace_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A --netns topology's namespace new since the snapshot is a leak (and is removed); one that was
    there before is not this run's. (A prefix of its own: a netns test beside it must not count.)"""
    monkeypatch.setattr(leak_check, "NETNS_PREFIX", "attrib-leakcheck-")
    checkout, temp = tmp_path / "checkout", tmp_path / "tmp"
    checkout.mkdir(), temp.mkdir()
    snapshot, args = tmp_path / "snapshot.json", ["--checkout", str(checkout), "--temp-dir", str(temp)]
    older, leaked = "attrib-leakcheck-old-pg", "attrib-leakcheck-new-pg"
    subprocess.run(["ip", "netns", "add", older], check=True)
    try:
        leak_check.main(["snapshot", str(snapshot), *args])
        assert leak_check.main(["check", str(snapshot), *args]) == 0  # the control: only the older one
        subprocess.run(["ip", "netns", "add", leaked], check=True)
        assert leak_check.main(["check", str(snapshot), *args]) == 1
        assert leaked not in leak_check.namespaces()
        assert older in leak_check.namespaces()
    finally:
        for name in (older, leaked):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
