"""A run killed with -9 is not "running" for ever: the index asks the run's lease."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocula.errors import UsageError
from ocula.storage import RunIndex, lease
from tests.conftest import run_cli

HOLD = """
import sys, time
from ocula.storage import RunIndex, lease
lease.take(sys.argv[1])
RunIndex(sys.argv[2]).record("run-1", path=sys.argv[1], status="running")
print("ready", flush=True)
time.sleep(600)
"""


def _holder(run: Path, root: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(root)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_killed_run_shows_dead_and_a_live_one_running(tmp_path):
    run, root = tmp_path / "runs" / "run-1", tmp_path / "runs"
    run.mkdir(parents=True)
    process = _holder(run, root)
    try:
        assert RunIndex(root).get("run-1")["status"] == "running"
        with pytest.raises(UsageError, match=r"is being written by pid \d+ on"):
            lease.take(run)  # a second writer is told who has the run
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert RunIndex(root).get("run-1")["status"] == "dead"
    listed = run_cli("runs", "list", "--root", str(root))
    assert "dead" in listed.stdout and "killed or crashed" in listed.stdout
    lease.take(run)  # the run can be written again (a resume)
    lease.release(run)


def test_a_run_without_a_lease_keeps_its_status(tmp_path):
    """Runs from before leases, or written on another host, are not judged."""
    index = RunIndex(tmp_path)
    (tmp_path / "old").mkdir()
    index.record("old", path=str(tmp_path / "old"), status="running")
    assert index.get("old")["status"] == "running"
    (tmp_path / "old" / ".lease").write_text("pid 1 on some-other-host\n")
    assert index.get("old")["status"] == "running"


@pytest.mark.slow
def test_ocula_train_killed_with_sigkill_is_dead_in_runs_list(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=30, size=32)
    out, root = tmp_path / "runs" / "killed", tmp_path / "runs"
    exe = Path(sys.executable).with_name("ocula")
    process = subprocess.Popen([str(exe), "train", str(data), "--model", "small_cnn", "--pretrained", "none",
                                "--mode", "full", "--epochs", "200", "--out", str(out), "--runs-root", str(root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out / "checkpoints" / "last.pt").exists():
        time.sleep(0.2)
    assert "running" in run_cli("runs", "list", "--root", str(root)).stdout
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    listed = run_cli("runs", "list", "--root", str(root)).stdout
    assert "dead" in listed and "running" not in listed.replace("--resume", "")
