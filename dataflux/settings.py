"""Typed configuration: the base class of every config section, and the one loader (YAML file +
`section.key=value` overrides, then validation) that the pipeline and the training configs share.

Core module: it imports nothing from the project, so `model/` and the stages can both use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

M = TypeVar("M", bound=BaseModel)
Overrides = list[str] | dict[str, Any] | None
UNIONS = (typing.Union, types.UnionType)


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming the file and the key path."""


class Section(BaseModel):
    """A config section: unknown keys are errors, and a loaded config cannot change under a running stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_of(key: str, *models: type[Section]) -> Any:
    """A union of sections told apart by `key` (each model's `key` is a Literal); a mapping without
    `key` is the first model, whose default it is (pydantic's own `discriminator="key"` would demand
    the key in every mapping)."""
    tags = [typing.get_args(m.model_fields[key].annotation)[0] for m in models]

    def tag(value: Any) -> str:
        found = value.get(key, tags[0]) if isinstance(value, dict) else getattr(value, key, tags[0])
        return found if isinstance(found, str) else repr(found)

    tag.__name__ = key  # pydantic names the discriminator after the function in its errors
    members = tuple(typing.Annotated[m, Tag(t)] for m, t in zip(models, tags))
    return typing.Annotated[typing.Union[members], Discriminator(tag)]


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["verify.batch_size=8", "annotate.skip=[asr,dnsmos]"]` -> {dotted key: value parsed as YAML}."""
    out = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {text!r}: expected section.key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {text!r}: the value is not valid YAML ({_first_line(e)})") from None
    return out


def apply_overrides(data: dict, overrides: Overrides) -> dict:
    """A copy of `data` with each dotted key set; strings in a list are `key=value` (value as YAML),
    a dict's values are taken as they are. A number in the path indexes a list (`verify.answerers.0.stack`)."""
    values = parse_assignments(overrides) if isinstance(overrides, list) else dict(overrides or {})
    data = _copy(data)
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        node = data
        for i, part in enumerate(parents):
            node = _child(node, part, ".".join(parents[:i + 1]), dotted)
        if isinstance(node, list):
            _index(node, last, dotted)
            node[int(last)] = value
        else:
            node[last] = value
    return data


def load(model: type[M], path: str | Path | None, overrides: Overrides = None,
         prepare: Callable[[dict, Path], dict] | None = None) -> M:
    """Read a YAML file (none: the defaults), apply the overrides, validate into `model`.
    `prepare` adjusts the file's own values before the overrides (e.g. paths relative to the file)."""
    data: dict = {}
    where = "overrides"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({_first_line(e)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        if prepare:
            data = prepare(data, path)
    values = parse_assignments(overrides) if isinstance(overrides, list) else dict(overrides or {})
    data = apply_overrides(data, values)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe(e, model, where, set(values))) from None


def describe(error: ValidationError, model: type[BaseModel], where: str, overridden: set[str] = frozenset()) -> str:
    """One line: `FILE: key.path: what is wrong` for the first error (and how many more there are)."""
    first = error.errors()[0]
    loc, kind, ctx = first["loc"], first["type"], first.get("ctx") or {}
    bad_key = loc[-1:] == ("[key]",)  # a mapping's key, not its value, is wrong
    path, parent = _key_path(model, loc[:-1] if bad_key else loc)
    if bad_key:
        what = f"unknown key (expected {ctx['expected']})" if "expected" in ctx else first["msg"]
    elif kind in ("extra_forbidden", "unexpected_keyword_argument") and parent is not None:
        what = f"unknown key (expected one of: {', '.join(parent)})"
    elif kind == "union_tag_invalid":
        key = str(ctx.get("discriminator", "")).strip("'()")
        path = f"{path}.{key}" if path else key
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        what = f"unknown value {ctx.get('tag')!r} (expected one of: {expected})"
    else:
        what = first["msg"]
        shown = repr(first.get("input"))
        if kind != "missing" and len(shown) <= 60 and not isinstance(first.get("input"), dict):
            what += f" (got {shown})"
    if any(path == k or path.startswith(k + ".") or k.startswith(path + ".") for k in overridden):
        where = f"{where} (override)" if where != "overrides" else "override"
    more = error.error_count() - 1
    line = f"{where}: {path or '(top level)'}: {what}" + (f" (and {more} more error{'s' * (more > 1)})" if more else "")
    return " ".join(line.split("\n"))  # one line, whatever a validator's message holds


def _key_path(model: type[BaseModel], loc: tuple) -> tuple[str, list[str] | None]:
    """The user's key path for a pydantic error location (union tags dropped), and the keys of the
    section that holds the last key (for the list of expected keys)."""
    parts: list[str] = []
    kind: Any = model
    parent = None
    for item in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            parent = list(kind.model_fields)
            field = kind.model_fields.get(item) if isinstance(item, str) else None
            parts.append(str(item))
            kind = field.annotation if field else None
        elif dataclasses.is_dataclass(kind):  # a plain dataclass used as a section (model.data.CorpusSpec)
            parent = [f.name for f in dataclasses.fields(kind)]
            parts.append(str(item))
            kind = None
        elif typing.get_origin(kind) in UNIONS:
            kind = _member(kind, item)  # a tag: not part of the user's path
        elif typing.get_origin(kind) in (tuple, list, dict):
            parts.append(str(item))
            args = [a for a in typing.get_args(kind) if a is not Ellipsis]
            kind = args[-1] if args else None
        else:
            parts.append(str(item))
            kind = None
    return ".".join(parts), parent


def _unwrap(kind: Any) -> Any:
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    args = typing.get_args(kind)
    if typing.get_origin(kind) in UNIONS \
            and len([a for a in args if a is not type(None)]) == 1:
        kind = next(a for a in args if a is not type(None))  # Optional[X] is X here
    return kind


def _member(union: Any, tag: Any) -> Any:
    for member in typing.get_args(union):
        base = _unwrap(member)
        tags = [m.tag for m in getattr(member, "__metadata__", ()) if hasattr(m, "tag")]
        if isinstance(base, type) and issubclass(base, BaseModel):
            tags += [v for f in base.model_fields.values() if typing.get_origin(f.annotation) is typing.Literal
                     for v in typing.get_args(f.annotation)]
        if tag in tags or getattr(base, "__name__", None) == tag:
            return member
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _child(node: Any, part: str, so_far: str, dotted: str) -> Any:
    if isinstance(node, list):
        _index(node, part, dotted)
        return node[int(part)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {dotted}: {so_far.rpartition('.')[0] or so_far} is not a mapping")
    if node.get(part) is None:
        node[part] = {}
    if not isinstance(node[part], (dict, list)):
        raise ConfigError(f"override {dotted}: {so_far} is not a mapping")
    return node[part]


def _index(node: list, part: str, dotted: str) -> None:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {dotted}: {part!r} is not an index of a list of {len(node)}")


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
