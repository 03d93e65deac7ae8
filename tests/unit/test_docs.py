"""The documentation that is generated cannot drift: docs/configuration.md is the schema's own."""

from pathlib import Path

from pipeline.config.reference import render, rows

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_reference_is_the_schema():
    assert (DOCS / "configuration.md").read_text() == render(), (
        "docs/configuration.md is out of date: python -m pipeline.config.reference > docs/configuration.md"
    )


def test_every_key_is_described():
    assert [key for key, _, _, text in rows() if not text] == []


def test_the_readme_index_points_at_docs_that_exist():
    readme = (DOCS.parent / "README.md").read_text()
    linked = {part.split(")")[0] for part in readme.split("](docs/")[1:]}
    assert len(linked) >= 10 and not [name for name in linked if not (DOCS / name).is_file()]
