"""Secrets are redacted before anything is logged, tagged or printed."""

import pytest

from pipeline.redaction import MASK, has_secret, redact, redact_tree


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
