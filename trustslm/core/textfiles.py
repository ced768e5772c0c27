"""Reading the small YAML files users and plugins give (configs, policies, specs, mock scripts)
and turning validation errors into one line. YAML is always read with ``yaml.safe_load``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError


def read_yaml_mapping(path: str | Path, what: str, error: type[BadInputError] = BadInputError,
                      *, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping in a YAML file; a missing, unreadable or non-mapping file raises ``error``
    with one line that starts with ``what`` (e.g. "policy")."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise error(f"{what} {path} is not readable YAML: {first}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{what} {path} must be a mapping")
    return data


def first_validation_error(exc: Any) -> tuple[str, str, str]:
    """(location, message, type) of the first error of a pydantic ``ValidationError``."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return loc, str(err["msg"]).removeprefix("Value error, "), str(err["type"])
