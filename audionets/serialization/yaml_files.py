"""The YAML that audionets reads and writes (training configs, model folders' config.yaml).

:func:`parse_yaml` reads it with one loader everywhere (configs, overrides, model folders);
:func:`check_version` refuses a file that a newer audionets wrote.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from audionets._version import __version__
from audionets.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as people write learning rates."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str = "<string>") -> Any:
    """Parse YAML text with the config loader; a syntax error becomes a ConfigError."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as err:
        line = str(err).replace("\n", " ")
        raise ConfigError(f"{where}: invalid YAML ({line})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config") from None


def major_minor(version: str) -> tuple[int, int]:
    """``"1.2.3rc1"`` -> ``(1, 2)``; ``(0, 0)`` when there is no number."""
    parts = re.findall(r"\d+", str(version))[:2]
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) if parts else (0, 0)


def check_version(version: str, where: str, error: type[Exception] = ConfigError) -> None:
    """Refuse (with ``error``) a file written by a newer audionets (MAJOR.MINOR) than this one."""
    if major_minor(version) > major_minor(__version__):
        raise error(
            f"{where}: written by audionets {version}, newer than the installed {__version__}; "
            "upgrade audionets (pip install -U audionets)"
        )
