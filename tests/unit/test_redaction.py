"""Secrets are redacted before anything is logged, tagged or printed."""

import pytest

from pipeline.redaction import MASK, has_secret, is_secret_key, redact, redact_tree


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://alice:hunter2pw@mlflow:5000", "http://alice:***@mlflow:5000"),
        ("postgresql://mlflow:pg-pass@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        (
            "s3://bucket/runs?access_key=AKIA1&secret_key=abc%2Fdef&region=eu",
            "s3://bucket/runs?access_key=***&secret_key=***&region=eu",
        ),
        ("https://x/y?X-Amz-Signature=deadbeef&X-Amz-Date=1", "https://x/y?X-Amz-Signature=***&X-Amz-Date=1"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("s3://bucket/runs", "s3://bucket/runs"),
    ],
)
def test_uri_credentials_are_masked(text, expected):
    assert redact(text) == expected
    assert has_secret(text) == (text != expected)


def test_environment_secrets_are_masked_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok-1234567890")
    assert redact("auth failed with tok-1234567890 at head") == f"auth failed with {MASK} at head"


def test_config_trees_mask_secret_keys_and_values():
    tree = {"tracking": {"uri": "http://u:pw123@h", "experiment": "e"}, "data": {"options": {"api_key": "k1", "n": 3}}}
    assert redact_tree(tree) == {
        "tracking": {"uri": "http://u:***@h", "experiment": "e"},
        "data": {"options": {"api_key": MASK, "n": 3}},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a token used as the URI's user
        ("https://ghp_abcdefghijklmnopqrstuvwx12@github.com/o/r.git", "https://***@github.com/o/r.git"),
        (
            "https://dapi0123456789abcdef0123456789abcdef@adb-1.azuredatabricks.net",
            "https://***@adb-1.azuredatabricks.net",
        ),
        ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),  # a user name, not a secret
        # a password holding "@" or "/"
        ("postgresql://mlflow:p@ss@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("s3://AKIAXYZ:wJalr/K7MDENG+bPx@bucket/runs", "s3://AKIAXYZ:***@bucket/runs"),
        # query values and fragments
        (
            "https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2Bdef&se=1",
            "https://acct.blob.core.windows.net/c?sv=2024&sig=***&se=1",
        ),
        ("https://h/api?key=k123&pwd=p&auth=a&code=c&n=1", "https://h/api?key=***&pwd=***&auth=***&code=***&n=1"),
        ("https://app/cb#access_token=eyJhbGc&state=1", "https://app/cb#***"),
        # headers, connection strings, assignments, token shapes
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Authorization: Bearer ***"),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=bXlrZXk=;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        ("DATABRICKS_TOKEN=dapi1 HF_TOKEN: x1", "DATABRICKS_TOKEN=*** HF_TOKEN: ***"),
        ("used hf_abcdefghijklmnopqrstuvwxyz0 here", "used *** here"),
        ("model.tokenizer=char max_tokens=3", "model.tokenizer=char max_tokens=3"),
    ],
)
def test_tokens_passwords_and_signatures_past_the_uri_user_are_masked(text, expected):
    assert redact(text) == expected
    assert has_secret(text) == (text != expected)


@pytest.mark.parametrize(
    "name", ["DATABRICKS_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY", "HF_TOKEN", "GITHUB_TOKEN"]
)
def test_every_credential_variable_is_masked_even_when_short(monkeypatch, name):
    monkeypatch.setenv(name, "q9z")
    assert redact("failed with q9z, not q9zz") == f"failed with {MASK}, not q9zz"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a;AccountKey=zz")
    assert redact("conn AccountName=a;AccountKey=zz") == f"conn {MASK}"


def test_everything_below_a_secret_key_and_inside_lists_is_masked():
    """tune.space's choice lists are descended into (they were logged in plain text as the param)."""
    space = {
        "data.options.secret_key": {"choice": ["s1", "s2"]},
        "data.source": {"choice": ["s3://k:sekrit@b/x", "s3://b/y"]},
        "model.hidden_size": {"choice": [16, 32]},
    }
    assert redact_tree({"tune": {"space": space}}) == {
        "tune": {
            "space": {
                "data.options.secret_key": MASK,
                "data.source": {"choice": ["s3://k:***@b/x", "s3://b/y"]},
                "model.hidden_size": {"choice": [16, 32]},
            }
        }
    }
    from pipeline.redaction import redact_value

    assert redact_value("tune.space", space) == redact_tree(space)


def test_the_printed_summary_masks_the_best_config(tmp_path):
    from pipeline.track.summary import RunSummary, render, write_json

    summary = RunSummary(
        status="FINISHED",
        tracking_uri="http://u:pw12345@mlflow:5000",
        experiment="e",
        run_id="r",
        name="n",
        best_config={"data.source": "s3://k:sekrit@b/x", "data.options.secret_key": "s1"},
        child_run_ids=[],
    )
    text = render(summary, title="tune")
    write_json(tmp_path / "s.json", summary.as_dict())
    for shown in (text, (tmp_path / "s.json").read_text()):
        assert "sekrit" not in shown and "s1" not in shown and "pw12345" not in shown
    assert "best config: data.source=s3://k:***@b/x, data.options.secret_key=***" in text


def test_no_config_key_reads_as_a_secret():
    """A schema key that names a credential word (`token_...`, `..._key`) would be saved as *** with
    the run's config and checkpoint, and the run could not be resumed or its model loaded."""
    from pipeline.config.reference import rows

    keys = [row[0].strip("`") for row in rows()]
    assert len(keys) > 100 and "model.word_dropout" in keys
    assert [key for key in keys if any(is_secret_key(part) for part in key.split("."))] == []
