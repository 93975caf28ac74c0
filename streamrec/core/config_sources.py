"""Where :class:`~streamrec.core.config.Settings` values come from, and what a bad one says.

- :class:`ConventionalEnvSource`: ``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``TRITON_URL``;
- :func:`config_file_source`: the TOML file named by ``STREAMREC_CONFIG`` (or ``from_env``'s
  ``config_file``), read by pydantic-settings' ``TomlConfigSettingsSource``;
- :func:`build`: builds the settings, records where each value came from (``streamrec config``
  shows it) and turns a ``ValidationError`` into a one-line :class:`UserError` naming the
  variable (or file key) and what it expects.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource, SettingsError, TomlConfigSettingsSource

from streamrec.core.config import UserError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from streamrec.core.config import Settings

ENV_PREFIX = "STREAMREC_"
CONFIG_FILE_VARIABLE = "STREAMREC_CONFIG"
MASK = "**********"
SECRET_FIELDS = frozenset({"kafka.sasl_password", "redis.password"})

# the conventional names, read beside STREAMREC_<SECTION>__<FIELD> (which wins)
CONVENTIONAL_VARIABLES: dict[str, tuple[str, str]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "REDIS_URL": ("redis", "url"),
    "TRITON_URL": ("triton", "url"),
}

# STREAMREC_<FIELD> names of the flat settings that came before the sections
RENAMED_VARIABLES: dict[str, str] = {
    "KAFKA_BOOTSTRAP": "kafka.bootstrap_servers",
    "PROFILE": "kafka.profile",
    "CLICKS_TOPIC": "kafka.clicks_topic",
    "DLQ_TOPIC": "kafka.dlq_topic",
    "ITEMS_TOPIC": "kafka.items_topic",
    "RECOMMENDATIONS_TOPIC": "kafka.recommendations_topic",
    "MODEL_EVENTS_TOPIC": "kafka.model_events_topic",
    "IMPRESSIONS_TOPIC": "kafka.impressions_topic",
    "REDIS_URL": "redis.url",
    "REDIS_STATE_TTL_S": "redis.state_ttl_s",
    "TRITON_URL": "triton.url",
    "MODEL_NAME": "triton.model_name",
    "MODEL_REPOSITORY": "triton.model_repository",
    "TRITON_TIMEOUT_S": "triton.timeout_s",
    "TRITON_MAX_BATCH": "triton.max_batch",
    "TRITON_MAX_DELAY_S": "triton.max_delay_s",
    "APP_ID": "worker.app_id",
    "WORKER_BATCH_SIZE": "worker.batch_size",
    "WORKER_BATCH_WITHIN_S": "worker.batch_within_s",
    "COMMIT_INTERVAL_S": "worker.commit_interval_s",
    "MAX_EVENT_BYTES": "worker.max_event_bytes",
    "MAX_ID_LENGTH": "worker.max_id_length",
    "MAX_FUTURE_SKEW_MS": "worker.max_future_skew_ms",
    "HISTORY_LENGTH": "engine.history_length",
    "SESSION_GAP_MS": "engine.session_gap_ms",
    "INTEREST_HALF_LIFE_MS": "engine.interest_half_life_ms",
    "SEEN_CAPACITY": "engine.seen_capacity",
    "DEDUP_CAPACITY": "engine.dedup_capacity",
    "TRENDING_WINDOW_MS": "engine.trending_window_ms",
    "TRENDING_HOP_MS": "engine.trending_hop_ms",
    "TRENDING_REFRESH_S": "engine.trending_refresh_s",
    "COVISIT_TOP_N": "engine.covisit_top_n",
    "RECOMMENDATIONS_K": "engine.k",
}

_config_file: ContextVar[Path | None] = ContextVar("streamrec_config_file", default=None)


def env_variable(dotted: str) -> str:
    """``worker.batch_size`` -> ``STREAMREC_WORKER__BATCH_SIZE``."""
    return ENV_PREFIX + dotted.replace(".", "__").upper()


class ConventionalEnvSource(PydanticBaseSettingsSource):
    """``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL`` and ``TRITON_URL`` into their sections."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, str]] = {}
        for variable, (section, name) in CONVENTIONAL_VARIABLES.items():
            value = os.environ.get(variable)
            if value:
                values.setdefault(section, {})[name] = value
        return values


def config_file_path() -> Path | None:
    path = _config_file.get()
    if path is None and os.environ.get(CONFIG_FILE_VARIABLE):
        path = Path(os.environ[CONFIG_FILE_VARIABLE])
    return path


def config_file_source(settings_cls: type[BaseSettings]) -> TomlConfigSettingsSource:
    return TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())


def build(cls: type[Settings], config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """Settings from overrides > environment > config file > defaults, or one-line UserError."""
    refuse_renamed_variables()
    path = config_file or config_file_path()
    file_values = read_config_file(path) if path is not None else {}
    token = _config_file.set(path)
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        where = Origins(overrides, file_values, path)
        raise UserError("; ".join(describe(error, where) for error in exc.errors())) from None
    except SettingsError as exc:  # a whole section in one variable that is not JSON
        section = re.search(r'field "(\w+)"', str(exc))
        name = env_variable(section.group(1)) if section else ENV_PREFIX + "<SECTION>"
        raise UserError(f"{name}: expected a JSON object; or set one field per variable, "
                        f"{name}__<FIELD>") from None
    finally:
        _config_file.reset(token)
    settings._origins.update(Origins(overrides, file_values, path).of_every_setting(cls))
    return settings


def refuse_renamed_variables() -> None:
    stale = [old for old in RENAMED_VARIABLES if os.environ.get(ENV_PREFIX + old)]
    if stale:
        raise UserError("; ".join(
            f"{ENV_PREFIX}{old} is no longer read: set {new_variable(RENAMED_VARIABLES[old])}"
            for old in stale
        ))


def new_variable(dotted: str) -> str:
    for variable, loc in CONVENTIONAL_VARIABLES.items():
        if ".".join(loc) == dotted:
            return f"{variable} (or {env_variable(dotted)})"
    return env_variable(dotted)


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{CONFIG_FILE_VARIABLE}={path}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None


class Origins:
    """Says where the value of a setting (a path such as ``("worker", "batch_size")``) came from."""

    def __init__(self, overrides: dict[str, Any], file_values: dict[str, Any],
                 path: Path | None) -> None:
        self.overrides = overrides
        self.file_values = file_values
        self.path = path
        self.environ = {k.upper(): v for k, v in os.environ.items() if v != ""}

    def of(self, loc: tuple[str, ...]) -> tuple[str, str]:
        """(kind, name): kind is override | env | file | default; name says which."""
        dotted = ".".join(loc)
        if _lookup(self.overrides, loc):
            return "override", dotted
        variable = env_variable(dotted)
        if variable in self.environ:
            return "env", variable
        whole = env_variable(loc[0])
        if len(loc) > 1 and whole in self.environ:
            return "env", whole
        for conventional, conventional_loc in CONVENTIONAL_VARIABLES.items():
            if conventional_loc == loc and conventional in self.environ:
                return "env", conventional
        if _lookup(self.file_values, loc):
            key = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else loc[0]
            return "file", f"{self.path}: {key}"
        return "default", dotted

    def of_every_setting(self, cls: type[Settings]) -> dict[str, str]:
        out: dict[str, str] = {}
        for loc in setting_paths(cls):
            kind, name = self.of(loc)
            out[".".join(loc)] = {"override": "override", "default": "default"}.get(kind, name)
        return out


def setting_paths(cls: type[BaseModel]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend((name, inner) for inner in annotation.model_fields)
        else:
            paths.append((name,))
    return paths


def _lookup(values: dict[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = values
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def describe(error: Any, origins: Origins) -> str:
    """One pydantic error as ``NAME='value': expected ...``."""
    loc = tuple(str(part) for part in error["loc"])
    kind, name = origins.of(loc)
    if kind == "default" and len(loc) > 1:
        name = env_variable(".".join(loc))  # an unknown key: say it as the variable it was
    if error["type"] == "extra_forbidden":
        return f"{name}: no such setting (`streamrec config` lists them)"
    shown = MASK if ".".join(loc) in SECRET_FIELDS else error.get("input")
    value = f"={shown!r}" if isinstance(shown, str | int | float | bool) else ""
    return f"{name}{value}: {expected(error)}"


_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "path_type": "a path",
    "model_type": "a table of settings", "dict_type": "a table of settings",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
           "less_than_equal": "<="}


def expected(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}"
    if kind == "literal_error":
        return "expected one of " + ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected"))))
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "")
        return f"expected a number {_BOUNDS[kind]} {bound}"
    message = str(error["msg"])
    return "expected " + message[len("Input should be "):] \
        if message.startswith("Input should be ") else message[:1].lower() + message[1:]
