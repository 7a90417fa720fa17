"""Resource fields whose defaults are the library's: every default is written once, in the
library's config types, and a resource field only names where it comes from.

`library_field(LiveFetchConfig, "max_concurrency", "...")` is a pydantic field with the
library's default (tuples as lists, for Dagster's config system) and a marker naming the
library field; `library_values(resource, LiveFetchConfig)` reads a resource's values back under
the library's names, ready for `LiveFetchConfig(**...)`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from pydantic import BaseModel, Field

SOURCE = "library_field"  # json_schema_extra key: "module.Class.field" of the library default


def library_default(config: type, name: str) -> Any:
    """The default of `config.name` as the library declares it."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    if name not in fields:
        raise AttributeError(f"{config.__qualname__} has no field {name!r}")
    field = fields[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{config.__qualname__}.{name} has no default")


def source_of(config: type, name: str) -> str:
    return f"{config.__module__}.{config.__qualname__}.{name}"


def library_field(config: type, name: str, description: str | None = None,
                  to_resource: Any = None) -> Any:
    """A resource field defaulting to the library's `config.name`.

    `to_resource` converts each element of a tuple default (e.g. a `Concept` into its config).
    """
    value = _as_config_value(library_default(config, name), to_resource)
    extra = {SOURCE: source_of(config, name)}
    if isinstance(value, list | dict):
        return Field(default_factory=lambda: copy.deepcopy(value), description=description,
                     json_schema_extra=extra)
    return Field(default=value, description=description, json_schema_extra=extra)


def library_values(resource: BaseModel, config: type, to_library: Any = None) -> dict[str, Any]:
    """The resource's values of `config`'s fields, under the library's names and types.

    `to_library` converts each config element of a list back (a concept config into a
    `Concept`); lists become tuples.
    """
    prefix = f"{config.__module__}.{config.__qualname__}."
    values = {}
    for attribute, info in type(resource).model_fields.items():
        source = (info.json_schema_extra or {}).get(SOURCE, "")
        if isinstance(source, str) and source.startswith(prefix):
            value = getattr(resource, attribute)
            if isinstance(value, list):
                value = tuple(to_library(v) if to_library and isinstance(v, BaseModel) else v
                              for v in value)
            values[source.removeprefix(prefix)] = value
    return values


def library_sources(resource_type: type[BaseModel]) -> dict[str, str]:
    """Resource field name → the library field it comes from (`module.Class.field`)."""
    sources = {}
    for attribute, info in resource_type.model_fields.items():
        source = (info.json_schema_extra or {}).get(SOURCE)
        if isinstance(source, str):
            sources[attribute] = source
    return sources


def _as_config_value(value: Any, to_resource: Any) -> Any:
    if isinstance(value, tuple):
        return [to_resource(v) if to_resource else v for v in value]
    if isinstance(value, dict):
        return dict(value)
    return value
