"""One config loader for ``generate``, ``render-views`` and ``train``.

Each command's settings are a typed dataclass (``GenerateConfig``, ``ViewsConfig``,
``TrainConfig``) with a ``validate`` method. Values reach it in layers, lowest first:

    the dataclass defaults < a preset (train) < --config FILE (JSON) < --set key=value < an explicit flag

A key is a field name (``-`` and ``_`` alike; a record may also accept a few aliases, such as
``anomaly`` for ``anomalies``). Every value is converted to its field's type (``"1e-4"`` -> float,
``"true"`` -> bool, ``"a,b"`` or a JSON list -> tuple, ``"none"`` -> None where the field may be
None), and an unknown key or a value of the wrong type is one line naming the key and the layer
it came from; then the record's ``validate`` checks ranges. A flag counts only when given on the
command line (click's parameter source), so an option's default never hides a file's value.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from brokenchairs.errors import InputError


@dataclass(frozen=True)
class Layer:
    source: str | Path  # what the values came from: "preset cpu", a file, "--set", "flags"
    values: dict


def _key(key: str) -> str:
    return key.strip().replace("-", "_")


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _number(name: str, value, kind, source):
    if isinstance(value, bool):
        raise InputError(source, f"{name} expects a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"{name} expects a number, got {value!r}") from exc
    if kind is int:
        if number != number or number != int(number):
            raise InputError(source, f"{name} expects a whole number, got {value!r}")
        return int(number)
    return number


def coerce(name: str, value, kind, source):
    """``value`` (JSON or a ``--set`` string) as a value of type ``kind``, or one line naming ``name``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    if value is None:
        raise InputError(source, f"{name} cannot be none")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise InputError(source, f"{name} expects true or false, got {value!r}")
    if kind in (int, float):
        return _number(name, value, kind, source)
    if kind is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise InputError(source, f"{name} expects text, got {value!r}")
        return value
    if typing.get_origin(kind) is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise InputError(source, f"{name} expects a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(name, v, args[0], source) for v in items)
        if len(items) != len(args):
            raise InputError(source, f"{name} expects {len(args)} values, got {value!r}")
        return tuple(coerce(name, v, a, source) for v, a in zip(items, args))
    raise TypeError(f"{name}: no conversion to {kind!r}")  # a field type this loader does not know: a bug


def resolve(cls, layers: list[Layer], aliases: dict[str, str] | None = None, fixed: dict | None = None,
            what: str = "option"):
    """A validated ``cls`` from ``layers`` (lowest first); ``fixed`` values win over every layer."""
    kinds = {f.name: field_types(cls)[f.name] for f in fields(cls)}
    aliases = aliases or {}
    values: dict = {}
    for layer in layers:
        for raw, value in layer.values.items():
            if raw.startswith("_"):  # "_source" and other comments
                continue
            name = aliases.get(_key(raw), _key(raw))
            if name not in kinds or name in (fixed or {}):
                known = ", ".join(k for k in kinds if k not in (fixed or {}))
                raise InputError(layer.source, f"unknown {what} {raw!r}; known: {known}")
            values[name] = coerce(name, value, kinds[name], layer.source)
    cfg = cls(**{**values, **(fixed or {})})
    cfg.validate()
    return cfg


def read_file(path: Path | None, what: str = "config") -> Layer | None:
    """The ``--config FILE`` layer: a JSON object, or one line naming the file."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, f"a {what} is a JSON object")
    return Layer(Path(path), data)


def parse_sets(items: tuple[str, ...]) -> Layer:
    """The ``--set key=value`` layer (repeatable)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(None, f"--set expects key=value, got {item!r}")
        out[_key(key)] = value.strip()
    return Layer("--set", out)


def flags_given(ctx, names: dict[str, str]) -> list[Layer]:
    """The explicit-flag layers, one per flag named after it (``--split-ratios``): ``names`` maps a
    click parameter to its field; only parameters given on the command line count, not defaults."""
    from click.core import ParameterSource

    layers = []
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            layers.append(Layer(param.opts[0], {names[param.name]: ctx.params[param.name]}))
    return layers


def split_layer(layer: Layer, keys: set[str]) -> tuple[Layer, Layer]:
    """(the values whose key is in ``keys``, the rest): one file holding two records' keys."""
    mine = {k: v for k, v in layer.values.items() if _key(k) in keys}
    return Layer(layer.source, mine), Layer(layer.source, {k: v for k, v in layer.values.items() if k not in mine})
