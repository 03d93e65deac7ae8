"""The bad-input corpus (tests/data/bad): each case exits 2 with one sentence, before any training."""

import re
from pathlib import Path

import pytest
import yaml
from helpers import own_output
from mlflow.tracking import MlflowClient

from pipeline.cli.main import run_command

BAD = Path(__file__).parents[1] / "data" / "bad"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text())


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    conf = root / "base.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "model": {"hidden_size": 4},
                "train": {"epochs": 1, "workers": 1, "storage_path": str(root / "runs")},
                "tracking": {"uri": f"sqlite:///{root}/mlflow.db", "experiment": "bad-input"},
            }
        )
    )
    return conf


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_sentence(ray_session, base, case, capsys):
    spec = CASES[case]
    overrides = [f"data.source={BAD / spec['source']}", *spec.get("set", [])]
    code = run_command(["train", "-c", str(base), *(f"--set={o}" for o in overrides)])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert code == 2, err[-3000:]
    assert "Traceback" not in own_output(err) and len(lines) == 1, err[-3000:]
    assert re.search(spec["error"], lines[0]), lines[0]
    assert len(lines[0]) < 600  # a sentence, not a dump


def test_no_bad_input_left_a_run_or_a_model(base):
    uri = yaml.safe_load(base.read_text())["tracking"]["uri"]
    client = MlflowClient(uri)
    assert client.search_registered_models() == []
    exp = client.get_experiment_by_name("bad-input")
    assert exp is None or client.search_runs([exp.experiment_id]) == []
