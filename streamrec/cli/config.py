"""``streamrec config``: the effective configuration, section by section, secrets masked.

Each value is printed with where it came from: its environment variable, the config file
(``STREAMREC_CONFIG``), the embedded stack's ``stack.json`` (addresses recorded by
``streamrec up``) or the default. ``--json`` prints one JSON object for machines::

    {"config_file": null, "settings": {"kafka": {...}, ...}, "origins": {"kafka.profile": ...}}

Also here: :func:`section_with_options`, how a command's options fall back to their settings
section (an option left out takes the settings value, so no default is written twice).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from streamrec.core.config import Settings, UserError

SectionT = TypeVar("SectionT", bound=BaseModel)


def register(subparsers: Any) -> None:
    config = subparsers.add_parser(
        "config", help="print the effective configuration (secrets masked)",
        description="Prints every setting with its value and where it came from "
        "(STREAMREC_<SECTION>__<FIELD>, KAFKA_BOOTSTRAP_SERVERS/REDIS_URL/TRITON_URL, the "
        "STREAMREC_CONFIG file, the embedded stack, or the default). Secrets are masked.",
    )
    config.add_argument("--json", action="store_true", help="one JSON object")
    config.set_defaults(func=run_config)


def run_config(args: argparse.Namespace) -> int:
    from streamrec.core.config_sources import config_file_path

    settings = Settings.from_env().resolved()
    report = effective_configuration(settings)
    report["config_file"] = str(config_file_path()) if config_file_path() else None
    print(json.dumps(report) if args.json else format_configuration(report))
    return 0


def effective_configuration(settings: Settings) -> dict[str, Any]:
    """Values (secrets masked) and origins; ``kafka.broker`` is the profile in effect."""
    values = settings.model_dump(mode="json")  # SecretStr dumps as "**********"
    values["kafka"]["broker"] = settings.kafka.broker
    origins = {
        f"{name}.{field}" if isinstance(section, dict) else name:
            settings.origin(f"{name}.{field}" if isinstance(section, dict) else name)
        for name, section in values.items()
        for field in (section if isinstance(section, dict) else [None])
    }
    origins["kafka.broker"] = f"profile {settings.kafka.profile}"
    return {"settings": values, "origins": origins}


def format_configuration(report: dict[str, Any]) -> str:
    values, origins = report["settings"], report["origins"]
    rows: list[tuple[str | None, str, Any, str]] = []  # (section, key, value, origin)
    for name, section in values.items():
        if not isinstance(section, dict):
            rows.append((None, name, section, origins[name]))
            continue
        for field, value in section.items():
            origin = origins[f"{name}.{field}"]
            if isinstance(value, dict):  # kafka.broker: the profile's settings, one a line
                rows.extend((name, f"{field}.{k}", v, origin) for k, v in value.items())
            else:
                rows.append((name, field, value, origin))
    width = max(len(key) for _, key, _, _ in rows)
    lines = [f"config file: {report.get('config_file') or 'none (STREAMREC_CONFIG unset)'}"]
    current: str | None = None
    for section, key, value, origin in rows:
        if section != current:
            lines.append(f"[{section}]")
            current = section
        label = f"  {key}" if section else key
        lines.append(f"{label:<{width + 2}} = {json.dumps(value):<24} ({origin})")
    return "\n".join(lines)


def section_with_options(section: SectionT, args: argparse.Namespace) -> SectionT:
    """``section`` with the options given on the command line (those not None) in place."""
    given = {name: getattr(args, name) for name in type(section).model_fields
             if getattr(args, name, None) is not None}
    try:
        return type(section).model_validate({**dict(section), **given})
    except ValidationError as exc:
        from streamrec.core.config_sources import expected

        raise UserError("; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}={e['input']!r}: {expected(e)}"
            for e in exc.errors()
        )) from None
