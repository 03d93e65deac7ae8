"""What `lstmpipe submit` uploads as the job's working directory: an allow-list, never the whole folder.

Anyone with Jobs API access can download an uploaded working directory, so the job gets only what
it runs: the project's code and configs (`pipeline/`, `jobs/`, `conf/`, `pyproject.toml`) and the
local files its config and arguments name (a Parquet/CSV source, `--data`, a checkpoint given as
`--model`). Inside those, `.gitignore` and `.rayignore` are honoured, caches are left out, and a
file that looks like a credential (by its name, or a secret in its text) is refused, naming it.
The chosen files are copied to a staging folder, and that folder is what Ray packages and uploads.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pathspec
import yaml

from pipeline.errors import ConfigError
from pipeline.redaction import has_secret, redact_tree

ALLOWED = ("pipeline", "jobs", "conf", "pyproject.toml")  # what a job runs, from a clone of this project
ALWAYS_LEFT_OUT = ["__pycache__/", "*.pyc", ".pytest_cache/", ".ruff_cache/", "*.egg-info/", ".DS_Store"]
IGNORE_FILES = (".gitignore", ".rayignore")
# names (any case) of files that hold credentials, and folders whose every file is one
CREDENTIAL_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".dockercfg",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "service-account*.json",
    "*serviceaccount*.json",
    "client_secret*.json",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "kubeconfig",
    "*.kubeconfig",
    "auth_token",
    "cluster.json",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
    "*.tfstate",
    "secrets.*",
    "*.secret",
    "*.secrets",
)
CREDENTIAL_DIRS = {".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", "gcloud", ".lstmpipe"}
SCANNED_BYTES = 1 << 20  # config files up to this size are read for secrets
SCANNED_SUFFIXES = {".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".properties", ".txt", ".csv"}
MAX_UPLOAD_MB = 100  # Ray's limit for a working_dir package is 512 MiB; ours is code and configs


@dataclass(frozen=True)
class Upload:
    root: Path  # the working directory the files come from
    paths: tuple[str, ...]  # relative to root, sorted
    bytes: int

    @property
    def files(self) -> int:
        return len(self.paths)

    def describe(self) -> str:
        return f"{self.files} files, {self.bytes / 2**20:.1f} MB from {self.root}"


def plan_upload(workdir: Path, *, needed: list[Path]) -> Upload:
    """The files the job gets: the allow-list plus `needed` (local files the job reads), refused
    (ConfigError) when a credential would go or the total is over MAX_UPLOAD_MB."""
    workdir = workdir.resolve()
    chosen: dict[str, int] = {}
    for root in [workdir / name for name in ALLOWED if (workdir / name).exists()]:
        for path in _walk(root, workdir=workdir):
            chosen[path.relative_to(workdir).as_posix()] = path.stat().st_size
    for root in [p for p in (_inside(p, workdir) for p in needed) if p is not None]:
        # named by the config or an argument: uploaded even where an ignore file names it (the job reads it)
        for path in [root] if root.is_file() else _walk_dir(root, [(root, _spec(root))]):
            chosen[path.relative_to(workdir).as_posix()] = path.stat().st_size
    _refuse_credentials(workdir, chosen)
    total = sum(chosen.values())
    if total > MAX_UPLOAD_MB * 2**20:
        biggest = sorted(chosen.items(), key=lambda kv: -kv[1])[:3]
        named = ", ".join(f"{p} ({size / 2**20:.0f} MB)" for p, size in biggest)
        raise ConfigError(
            f"the job would upload {total / 2**20:.0f} MB from {workdir} (limit {MAX_UPLOAD_MB} MB), largest: {named}; "
            "put the data where the cluster reads it (data.source as s3://... or a shared path) and pass that instead"
        )
    return Upload(root=workdir, paths=tuple(sorted(chosen)), bytes=total)


@contextmanager
def staged(plan: Upload) -> Iterator[Path | None]:
    """A temporary folder holding exactly the planned files (None when there are none), removed after."""
    if not plan.paths:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="lstmpipe-upload-") as tmp:
        for rel in plan.paths:
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(plan.root / rel, target)
        yield Path(tmp)


def _inside(path: Path, workdir: Path) -> Path | None:
    """`path` resolved, if it is a file or folder inside the working directory (others are not uploaded)."""
    resolved = (workdir / path).resolve() if not path.is_absolute() else path.resolve()
    if resolved.exists() and resolved.is_relative_to(workdir) and resolved != workdir:
        return resolved
    return None


def _walk(root: Path, *, workdir: Path) -> Iterator[Path]:
    """The files under `root` (a top-level entry, or `root` itself), without caches and what an
    ignore file of the working directory or a folder below it names."""
    specs = [(workdir, _spec(workdir))]
    if root.is_file():
        if not _ignored(root, specs):
            yield root
        return
    yield from _walk_dir(root, specs)


def _walk_dir(folder: Path, specs: list) -> Iterator[Path]:
    if _ignored(folder, specs, is_dir=True):
        return
    specs = [*specs, (folder, _spec(folder))]
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and not entry.resolve().is_relative_to(specs[0][0]):
            continue  # a link out of the working directory would upload what it points at
        if entry.is_dir():
            yield from _walk_dir(entry, specs)
        elif entry.is_file() and not _ignored(entry, specs):
            yield entry


def _spec(folder: Path) -> pathspec.PathSpec:
    lines = list(ALWAYS_LEFT_OUT)
    for name in IGNORE_FILES:
        if (folder / name).is_file():
            lines += (folder / name).read_text(errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def _ignored(path: Path, specs: list, *, is_dir: bool = False) -> bool:
    for base, spec in specs:
        if path == base or not path.is_relative_to(base):
            continue
        rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(rel):
            return True
    return False


def _refuse_credentials(workdir: Path, chosen: dict[str, int]) -> None:
    found = [rel for rel, size in chosen.items() if _looks_like_credential(workdir / rel, rel, size)]
    if found:
        raise ConfigError(
            f"the job's upload would carry {len(found)} file(s) that look like credentials ({', '.join(found[:5])}), "
            "readable by anyone with Jobs API access; move them out of the uploaded folders or name them in "
            ".rayignore, and give the cluster its credentials through the nodes' environment"
        )


def _looks_like_credential(path: Path, rel: str, size: int) -> bool:
    parts = rel.split("/")
    if any(part.lower() in CREDENTIAL_DIRS for part in parts[:-1]):
        return True
    if any(fnmatch.fnmatch(parts[-1].lower(), pattern) for pattern in CREDENTIAL_FILES):
        return True
    return size <= SCANNED_BYTES and path.suffix.lower() in SCANNED_SUFFIXES and _text_has_secret(path)


def _text_has_secret(path: Path) -> bool:
    """A secret in a config file's values: a credential in a URI or a known variable's value
    anywhere, and in YAML or JSON a secret-named key with a value. (Source code is not read: its
    docstrings are full of example URIs.)"""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # binary: Parquet, images
    if has_secret(text):
        return True
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return False
        return isinstance(data, dict | list) and redact_tree(data) != data
    return False
