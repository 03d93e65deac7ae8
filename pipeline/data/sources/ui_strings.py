"""Django's user-interface strings, English -> `lang`, from the message catalogues its wheel ships
(`django/**/locale/<lang>/LC_MESSAGES/*.mo`, BSD-3): ~800 unique messages per language, short,
real and hard ("Change password" -> "Modifier le mot de passe"; placeholders such as `%(name)s`).

The wheel is fetched once through pip into `data.cache_dir` (it is not a dependency: only its
catalogues are read, with the standard library's gettext, never imported). Messages with a plural
form, an empty translation or no letters are left out; a message kept in several catalogues
keeps its first translation.

Columns: `source` (English), `target` (lang), `catalogue` (which .mo file).
"""

from __future__ import annotations

import gettext
import io
import re
import zipfile
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.fetch import pip_file
from pipeline.data.sources.options import STRICT
from pipeline.errors import DataError

PACKAGE = "django==5.2.19"
WHEEL = "django-5.2.19-py3-none-any.whl"
CATALOGUE = re.compile(r"^django/(?:.+/)?locale/(?P<lang>[^/]+)/LC_MESSAGES/[^/]+\.mo$")
CONTEXT = "\x04"  # gettext keys "context\x04message" for messages with a msgctxt


class UiStringsOptions(BaseModel):
    model_config = STRICT

    lang: str = Field("fr", pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$", description="Django locale: fr, de, es, ja, ...")


def read_messages(wheel: Path, *, lang: str) -> list[tuple[str, str, str]]:
    """(English, translation, catalogue) of every singular message of `lang` in the wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = sorted(n for n in archive.namelist() if (m := CATALOGUE.match(n)) and m["lang"] == lang)
            found = {name: archive.read(name) for name in names}
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{wheel} is not the {PACKAGE} wheel; delete it to fetch it again") from err
    if not found:
        raise DataError(f"Django ships no '{lang}' catalogues; set data.options.lang to a Django locale (fr, de, ...)")
    rows, seen = [], set()
    for name, data in found.items():
        catalogue = gettext.GNUTranslations(io.BytesIO(data))._catalog  # msgid -> msgstr
        for key, text in catalogue.items():
            if not isinstance(key, str) or not key:  # plural forms are (msgid, n); "" is the header
                continue
            english = key.split(CONTEXT)[-1]
            if not text.strip() or english in seen or not re.search(r"[^\W\d_]", english):
                continue
            seen.add(english)
            rows.append((english, text, name.removeprefix("django/").split("/locale/")[0]))
    return rows


def generate(opts: UiStringsOptions, *, cache_dir: str | Path) -> pa.Table:
    wheel = pip_file(PACKAGE, filename=WHEEL, kind="wheel", cache_dir=cache_dir, folder="ui_strings")
    rows = read_messages(wheel, lang=opts.lang)
    return pa.table(
        {
            "source": pa.array([r[0] for r in rows], pa.string()),
            "target": pa.array([r[1] for r in rows], pa.string()),
            "catalogue": pa.array([r[2] for r in rows], pa.string()),
        }
    )
