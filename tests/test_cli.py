"""The command line: which commands may create a home, a closed pipe, ``seedlab app``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from seedlab.cli import APP_FILE, main
from seedlab.store import Store

REPO = Path(__file__).resolve().parents[1]
SIMULATE = ["simulate", "--instances", "20", "--sizes", "base", "--pretrain-seeds", "2",
            "--finetune-seeds", "2", "--checkpoints", "1"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["reindex"],
                                     ["annotations"], ["runs", "list"], ["worker", "--once"],
                                     ["app"]])
def test_a_command_that_only_reads_refuses_a_missing_home(tmp_path, capsys, command):
    missing = tmp_path / "mistyped"
    assert main(["--home", str(missing), *command]) == 2
    err = capsys.readouterr().err
    assert f"no seedlab home at {missing} (from --home)" in err
    assert "Traceback" not in err
    assert not missing.exists()


def test_a_folder_without_a_store_is_not_opened_or_written(tmp_path, capsys):
    plain = tmp_path / "etc"
    plain.mkdir()
    (plain / "passwd").write_text("x")
    assert main(["--home", str(plain), "info"]) == 2
    assert "holds no seedlab store" in capsys.readouterr().err
    assert sorted(p.name for p in plain.iterdir()) == ["passwd"]


def test_writing_commands_create_only_a_home_the_user_named(tmp_path, monkeypatch, capsys):
    from seedlab.store import shipped

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEEDLAB_HOME", raising=False)
    # an installed package without a shipped study beside it: the default is ./data
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "no-shipped-study")
    assert main(["info"]) == 2
    assert "no seedlab home at" in capsys.readouterr().err
    assert main(SIMULATE) == 2  # the implicit ./data is never created
    assert "name the home to create with --home" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()

    named = tmp_path / "new" / "home"
    assert main(["--home", str(named), *SIMULATE]) == 0
    assert Store(named, create=False).info()["totals"]["runs"] == 4
    capsys.readouterr()
    assert main(["--home", str(named), "info"]) == 0
    assert "seedlab home:" in capsys.readouterr().out

    monkeypatch.setenv("SEEDLAB_HOME", str(tmp_path / "from-env"))
    assert main(["runs", "list"]) == 2
    assert "(from $SEEDLAB_HOME)" in capsys.readouterr().err
    assert main(SIMULATE) == 0
    assert (tmp_path / "from-env" / "catalog.sqlite").exists()


def test_in_a_checkout_the_default_home_is_the_user_home(monkeypatch, capsys):
    from seedlab.store import shipped

    monkeypatch.delenv("SEEDLAB_HOME", raising=False)
    if not shipped.is_published(shipped.SHIPPED):
        pytest.skip("this checkout ships no study in data/")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"seedlab home: {shipped.USER_HOME}" in out and "rotten_tomatoes" in out


def test_a_closed_pipe_ends_quietly(tmp_path):
    store = Store(tmp_path / "home")
    with store.transaction("pickle", "verdicts") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_annotations(pd.DataFrame({
            "task": "toy", "instance_id": [f"i{k}" for k in range(5000)], "annotator": "ana",
            "verdict": "correct", "note": "a note long enough to fill a pipe quickly"}))
    proc = subprocess.Popen([sys.executable, "-m", "seedlab", "--home", str(store.home),
                             "annotations"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env())
    assert proc.stdout.readline().startswith(b"id,task,instance_id")
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not APP_FILE.exists(), reason=f"{APP_FILE} is not in this checkout")
def test_seedlab_app_serves_the_dashboard_on_the_home_and_stops(tmp_path):
    store = Store(tmp_path / "home")
    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seedlab", "app", "--home", str(store.home),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env())
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as reply:
                    health = reply.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", proc.stderr.read1().decode() if proc.poll() is not None else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    assert f"serving {store.home} at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err
    assert code in (0, -15)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
