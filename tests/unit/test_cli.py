"""The CLI without Ray: help, and bad config -> exit 2 with one sentence naming the key."""

import os
import subprocess
import sys

import pytest

LSTMPIPE = [sys.executable, "-m", "pipeline.cli"]


@pytest.mark.parametrize("command", [[], ["smoke"], ["train"], ["tune"]])
def test_help(command):
    out = subprocess.run([*LSTMPIPE, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  hiden_size: 3\n")
    out = subprocess.run(
        [*LSTMPIPE, "train", "-c", str(conf)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 2
    assert "model.hiden_size" in out.stderr and "did you mean 'model.hidden_size'" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()  # failed before any tracking or Ray work


def test_bad_set_exits_2(tmp_path):
    out = subprocess.run(
        [*LSTMPIPE, "tune", "-c", "conf/smoke.yaml", "--set", "train.lr=zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "'train.lr' = 'zero'" in out.stderr


def test_resume_needs_name():
    out = subprocess.run(
        [*LSTMPIPE, "train", "-c", "conf/smoke.yaml", "--resume"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "--resume needs --name" in out.stderr


@pytest.mark.parametrize("job", ["jobs/train.py", "jobs/tune.py"])
def test_job_entrypoints_share_the_cli(job):
    out = subprocess.run(
        [sys.executable, job, "-c", "conf/smoke.yaml", "--set", "model.cell=lsmt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "'model.cell' = 'lsmt'" in out.stderr


def test_unknown_option_is_a_usage_error():
    out = subprocess.run([*LSTMPIPE, "train", "--bogus"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "bogus" in out.stderr


def test_data_list_names_every_builtin_with_its_task():
    out = subprocess.run([*LSTMPIPE, "data", "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name, task in [
        ("adding", "regression"),
        ("digits", "classify"),
        ("japanese_vowels", "classify"),
        ("sunspots", "forecast"),
        ("co2", "forecast"),
    ]:
        assert any(line.split()[:2] == [name, task] for line in out.stdout.splitlines())


def test_errors_keep_their_cause_and_debug_shows_it(tmp_path):
    """One sentence by default; with --debug (or LSTMPIPE_DEBUG=1) the traceback, down to the cause."""
    conf = tmp_path / "c.yaml"
    conf.write_text("model: [unclosed\n")
    quiet = subprocess.run(
        [*LSTMPIPE, "train", "-c", str(conf)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 1
    for flags, env in ((["--debug"], {}), ([], {"LSTMPIPE_DEBUG": "1"})):
        loud = subprocess.run(
            [*LSTMPIPE, *flags, "train", "-c", str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, **env},
        )
        assert loud.returncode == 2 and "Traceback" in loud.stderr
        assert "yaml.parser.ParserError" in loud.stderr  # the cause, kept with `raise ... from err`
        assert loud.stderr.strip().splitlines()[-1].startswith("error: config ")


def test_the_command_exits_without_collecting_what_it_leaves(monkeypatch):
    """Python's final cycle collection of torch's, Ray's and MLflow's objects cost ~2 s per command
    (docs/performance.md, B9): main() freezes them once the command is done."""
    import gc

    from pipeline.cli import main as cli

    monkeypatch.setattr(cli, "run_command", lambda argv: 3)
    try:
        with pytest.raises(SystemExit) as done:
            cli.main()
        assert done.value.code == 3 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
