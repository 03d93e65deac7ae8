"""The rules every built-in source's options follow, as the config sections do: no unknown keys,
strict types (`true` is not 1, `"8"` is not 8) and finite numbers."""

from pydantic import ConfigDict

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
SEED_MAX = 2**63 - 1  # numpy, torch and Ray all take seeds up to this
