"""A shared study on a real PostgreSQL server: two worker processes, every trial exactly once."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from ocula.tune import counted
from tests.tune.pg_worker import TRIALS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    return Path(found[-1]).parent if found[-1] else None


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on a free port; its URL."""
    binaries = _postgres_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="ocula-pg-"))  # not under pytest's 0700 root: postgres must enter it
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = root / "data"
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)  # noqa: E731
    run(str(binaries / "initdb"), "-D", str(data), "-U", "ocula", "--auth=trust", "-E", "UTF8")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql://ocula@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_and_run_every_trial_exactly_once(postgres, tmp_path):
    workers = [subprocess.Popen([sys.executable, "-m", "tests.tune.pg_worker", role, postgres, str(tmp_path)],
                                cwd=ROOT, stderr=subprocess.PIPE, text=True) for role in ("start", "join")]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    lines = [line.split(",") for line in (tmp_path / "trials.log").read_text().split()]
    numbers = [int(number) for number, _ in lines]
    assert len(numbers) == TRIALS and sorted(numbers) == sorted(set(numbers))  # each ran once, none twice
    assert len({pid for _, pid in lines}) == 2  # both workers took part
    study = optuna.load_study(study_name="shared", storage=postgres)
    done = counted(study)
    assert len(done) == TRIALS and all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    assert sorted(t.number for t in done) == sorted(numbers)
    assert len({tuple(sorted(t.params.items())) for t in done}) == TRIALS  # the workers drew different values


def test_ocula_tune_join_adds_a_worker_with_the_studys_own_settings(postgres, tmp_path):
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data", per_class=8)
    (tmp_path / "space.yaml").write_text("lr: {type: float, low: 0.001, high: 0.01, log: true}\n")
    exe = str(Path(sys.executable).with_name("ocula"))
    start = subprocess.Popen([exe, "tune", str(data), "--strategy", "random", "--trials", "4", "--study", "images",
                              "--storage", postgres, "--space", str(tmp_path / "space.yaml"), "--model", "small_cnn",
                              "--pretrained", "none", "--mode", "full", "--max-epochs", "2",
                              "--out", str(tmp_path / "a")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    joined = None
    for _ in range(600):  # join once the study exists
        joined = subprocess.run([exe, "tune", "--join", "--study", "images", "--storage", postgres,
                                 "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=600)
        if "no study named" not in joined.stderr:
            break
    out, err = start.communicate(timeout=600)
    assert start.returncode == 0, err
    assert joined.returncode == 0, joined.stderr
    trials = counted(optuna.load_study(study_name="images", storage=postgres))
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    runs = [Path(t.user_attrs["run"]) for t in trials]
    assert all((run / "model" / "weights.pt").exists() for run in runs)
    assert {run.parent.parent for run in runs} <= {tmp_path / "a", tmp_path / "b"}
