"""Config values and secrets over wasi:config/store@0.2.0-rc.1.

    from glint import config

    greeting = config.get("GREETING") or "Hello"

A Glint node answers from the function's `[env]` values and its secrets.
"""

from componentize_py_types import Err
from wit_world.imports import wasi_config_store as config_wit


class ConfigError(Exception):
    """The host could not read its config source; the message says why."""


def _error(wit_error: config_wit.Error) -> ConfigError:
    kind = "upstream" if isinstance(wit_error, config_wit.Error_Upstream) else "io"
    return ConfigError(f"{kind}: {wit_error.value}")


def get(name: str) -> str | None:
    """The value of `name`, or None when it is not set."""
    try:
        return config_wit.get(name)
    except Err as e:
        raise _error(e.value) from None


def get_all() -> dict[str, str]:
    """Every config value the function can see."""
    try:
        return dict(config_wit.get_all())
    except Err as e:
        raise _error(e.value) from None
