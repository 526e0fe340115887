"""The training configs shipped with the package (`tiny`, `small`, `base`: YAML files beside this module).

Every command that takes `--config` takes either a name of one of these or the path of a YAML file, so
`omniembed train --config small` works from any directory and from a wheel install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omniembed.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """The packaged config names, sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve(name_or_path: str | Path) -> Path:
    """An existing YAML file as given, else the packaged config of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.suffix and len(path.parts) == 1 and packaged.is_file():
        return packaged
    raise ConfigError(f"config {str(name_or_path)!r}: no such file, and not a packaged config name "
                      f"(packaged: {', '.join(names())})")


def load(name_or_path: str | Path) -> dict[str, Any]:
    """The mapping a config file holds (an empty file is an empty mapping)."""
    import yaml

    path = resolve(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def section(name_or_path: str | Path, key: str) -> tuple[dict[str, Any], str]:
    """(the `key` section of a training config, a name for errors). A file without that section is read
    as the section itself, so a plain model or tokenizer YAML works where a training config does."""
    data = load(name_or_path)
    source = str(resolve(name_or_path))
    if key not in data:
        return data, source
    value = data[key] or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: section {key!r} must be a mapping, got {type(value).__name__}")
    return dict(value), f"{source} ({key})"
