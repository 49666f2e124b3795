"""Tool (function-calling) declarations built from plain Python functions.

A :class:`Tool` carries the wire declaration (name, description, JSON-schema parameters) and,
optionally, the Python callable that runs it. :func:`tool_from_function` builds the schema from
the signature, the type hints and the docstring (Google, NumPy or Sphinx style). Nothing here
does I/O; the session runs :meth:`Tool.invoke` off the reader thread.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import json
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import attrs

from ._wire import plain
from .errors import InvalidInput, ToolArgumentsError, UsageError
from .reply import parse_arguments

__all__ = [
    "Tool",
    "as_tools",
    "json_schema_for",
    "parse_arguments",
    "parse_docstring",
    "tool",
    "tool_from_function",
]

log = logging.getLogger("dashscope_rt.tools")

_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NoneType = type(None)


def _check_name(_inst: object, _attr: object, value: str) -> None:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            "tool name must match ^[a-zA-Z0-9_-]{1,64}$ (letters, digits, _ and -),"
            f" got {value!r}"
        )


def _check_timeout(_inst: object, _attr: object, value: float | None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise InvalidInput(
            f"a tool's timeout must be a number of seconds > 0 or None, got {value!r}"
        )


def _check_parameters(_inst: object, _attr: object, value: Mapping[str, Any]) -> None:
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"tool parameters must be a JSON-schema dict, got {type(value).__name__}"
        )
    if value.get("type", "object") != "object":
        raise InvalidInput(
            "tool parameters must be a JSON schema of type 'object',"
            f" got type {value.get('type')!r}"
        )


def _empty_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


@attrs.frozen(kw_only=True)
class Tool:
    """A function the model may call.

    ``parameters`` is a JSON schema of type ``object``; ``fn`` (optional) is what
    :meth:`invoke` runs. A ``Tool`` is callable and forwards to ``fn``. ``timeout``: seconds
    the session lets ``fn`` run before it sends the model an error result instead (None: the
    session's ``tool_timeout``).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(
        factory=_empty_parameters, validator=_check_parameters, hash=False
    )
    fn: Callable[..., Any] | None = attrs.field(default=None, eq=False, repr=False)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)

    def to_wire(self) -> dict[str, Any]:
        """The declaration as sent in ``session.update`` ``tools`` (chat-completions shape)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = plain(self.parameters)
        return {"type": "function", "function": function}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], fn: Callable[..., Any] | None = None) -> Tool:
        """Build from a wire dict: nested ``{"type": "function", "function": {...}}`` or flat."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a tool declaration must be a dict, got {type(data).__name__}")
        kind = data.get("type", "function")
        if kind != "function":
            raise InvalidInput(f"only tools of type 'function' are supported, got {kind!r}")
        inner = data.get("function", data)
        if not isinstance(inner, Mapping) or "name" not in inner:
            raise InvalidInput(f"a tool declaration needs a 'name': {dict(data)!r}")
        params = inner.get("parameters")
        return cls(
            name=inner["name"],
            description=str(inner.get("description") or ""),
            parameters=dict(params) if params is not None else _empty_parameters(),
            fn=fn,
        )

    def parse_arguments(self, arguments: str | bytes | Mapping[str, Any] | None) -> dict[str, Any]:
        """Decode and check ``arguments`` against the parameter schema (no call)."""
        args = parse_arguments(arguments, tool=self.name)
        props = self.parameters.get("properties")
        missing = [k for k in self.parameters.get("required", ()) if k not in args]
        if missing:
            raise ToolArgumentsError(
                f"tool {self.name!r}: missing required argument(s) {', '.join(missing)}"
                f" in {_short(arguments)}",
                tool=self.name,
                arguments=arguments,
            )
        if isinstance(props, Mapping) and not self.parameters.get("additionalProperties"):
            unknown = [k for k in args if k not in props]
            if unknown and not _takes_var_kwargs(self.fn):
                raise ToolArgumentsError(
                    f"tool {self.name!r}: unknown argument(s) {', '.join(unknown)}"
                    f" (expected: {', '.join(props) or 'none'})",
                    tool=self.name,
                    arguments=arguments,
                )
        return args

    def invoke(self, arguments: str | bytes | Mapping[str, Any] | None) -> str:
        """Parse ``arguments``, call ``fn`` and return its result as a string for the model.

        A ``str`` result is returned as is; anything else is JSON-encoded. Raises
        :class:`ToolArgumentsError` for arguments that don't fit; errors raised by ``fn``
        propagate unchanged.
        """
        if self.fn is None:
            raise InvalidInput(f"tool {self.name!r} has no Python function to invoke")
        args = self.parse_arguments(arguments)
        posargs, kwargs = _bind(self.fn, self.name, args, arguments)
        result = self.fn(*posargs, **kwargs)
        if isinstance(result, str):
            return result
        return json.dumps(result, ensure_ascii=False, default=_jsonable)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise UsageError(
                f"tool {self.name!r} has no Python function to call (it was declared from a dict)"
            )
        return self.fn(*args, **kwargs)

    def __get__(self, obj: Any, objtype: Any = None) -> Tool:
        # Lets @tool decorate methods: instance.method is a Tool bound to the instance.
        if obj is None or not _is_method_like(self.fn):
            return self
        return attrs.evolve(self, fn=self.fn.__get__(obj, objtype))  # type: ignore[union-attr]


def _short(arguments: Any, limit: int = 200) -> str:
    text = arguments if isinstance(arguments, str) else repr(arguments)
    return text if len(text) <= limit else text[:limit] + "..."


def _takes_var_kwargs(fn: Callable[..., Any] | None) -> bool:
    if fn is None:
        return False
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _bind(
    fn: Callable[..., Any], name: str, args: dict[str, Any], raw: Any
) -> tuple[list[Any], dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [], args
    hints = _safe_hints(fn)
    posargs: list[Any] = []
    kwargs: dict[str, Any] = {}
    for key, value in args.items():
        param = sig.parameters.get(key)
        if param is not None and key in hints:
            value = _coerce(value, hints[key])
        if param is not None and param.kind is param.POSITIONAL_ONLY:
            continue
        kwargs[key] = value
    for param in sig.parameters.values():
        if param.kind is not param.POSITIONAL_ONLY:
            break
        if param.name in args:
            value = args[param.name]
            posargs.append(_coerce(value, hints[param.name]) if param.name in hints else value)
        elif param.default is param.empty:
            break
        else:
            posargs.append(param.default)
    try:
        sig.bind(*posargs, **kwargs)
    except TypeError as exc:
        raise ToolArgumentsError(
            f"tool {name!r}: arguments {_short(raw)} do not fit {name}{sig}: {exc}",
            tool=name,
            arguments=raw,
        ) from None
    return posargs, kwargs


def _coerce(value: Any, hint: Any) -> Any:
    """Turn JSON values into the Enum / tuple the function's hints ask for; else unchanged."""
    hint = _strip_annotated(hint)
    origin = typing.get_origin(hint)
    try:
        if origin is Union:
            members = [a for a in typing.get_args(hint) if a is not _NoneType]
            if value is None or len(members) != 1:
                return value
            return _coerce(value, members[0])
        if isinstance(hint, type) and issubclass(hint, enum.Enum) and not isinstance(value, hint):
            return hint(value)
        if (hint is tuple or origin is tuple) and isinstance(value, list):
            return tuple(value)
    except (ValueError, TypeError):
        return value
    return value


# --- schema generation -----------------------------------------------------------------------


def _strip_annotated(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _json_type(values: Iterable[Any]) -> str | None:
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add("boolean")
        elif isinstance(v, int):
            kinds.add("integer")
        elif isinstance(v, float):
            kinds.add("number")
        elif isinstance(v, str):
            kinds.add("string")
        elif v is None:
            kinds.add("null")
        else:
            return None
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 else None


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    kind = _json_type(values)
    if kind is not None:
        schema["type"] = kind
    schema["enum"] = values
    return schema


_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAYS = (
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Iterable,
    collections.abc.Collection,
)
_OBJECTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def json_schema_for(hint: Any) -> dict[str, Any]:
    """JSON schema for a Python type hint (``{}`` = anything, for hints it cannot express)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema = json_schema_for(args[0])
        desc = next((m for m in args[1:] if isinstance(m, str)), None)
        if desc:
            schema["description"] = desc
        return schema
    if hint is None or hint is _NoneType:
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([m.value for m in hint])
    if origin is typing.Literal:
        return _enum_schema([a.value if isinstance(a, enum.Enum) else a for a in args])
    if origin is Union or _is_union_type(hint):
        return _union_schema(args)
    if hint is tuple or origin is tuple:
        if not args:
            return {"type": "array"}
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema_for(args[0])}
        if args == ((),):
            return {"type": "array", "maxItems": 0}
        return {
            "type": "array",
            "prefixItems": [json_schema_for(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if hint in _ARRAYS or origin in _ARRAYS:
        schema = {"type": "array"}
        if args:
            schema["items"] = json_schema_for(args[0])
        return schema
    if hint in _OBJECTS or origin in _OBJECTS:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = json_schema_for(args[1])
        return schema
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__"):
        return _typeddict_schema(hint)
    return {}


def _is_union_type(hint: Any) -> bool:
    union_type = getattr(types, "UnionType", None)
    return union_type is not None and isinstance(hint, union_type)


def _union_schema(args: tuple[Any, ...]) -> dict[str, Any]:
    members = [json_schema_for(a) for a in args]
    if any(m == {} for m in members):
        return {}
    simple = [m for m in members if set(m) == {"type"} and isinstance(m["type"], str)]
    if len(simple) == len(members):
        kinds: list[str] = []
        for m in simple:
            if m["type"] not in kinds:
                kinds.append(m["type"])
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": members}


def _typeddict_schema(hint: Any) -> dict[str, Any]:
    hints = _safe_hints(hint)
    props = {k: json_schema_for(v) for k, v in hints.items()}
    required = [k for k in hints if k in getattr(hint, "__required_keys__", hints)]
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def _safe_hints(obj: Any) -> dict[str, Any]:
    """Type hints of ``obj``, evaluating string annotations one by one when needed.

    Hints that cannot be resolved (a name the function's module does not define) are left
    out: the schema then accepts anything for that parameter.
    """
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # fall back to one annotation at a time
        pass
    target = inspect.unwrap(obj) if callable(obj) else obj
    raw = dict(getattr(target, "__annotations__", {}) or {})
    globalns = dict(getattr(target, "__globals__", {}) or {})
    if isinstance(obj, type):
        globalns = dict(vars(sys.modules.get(obj.__module__, typing)))
    globalns.setdefault("typing", typing)
    hints: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            hints[key] = value
            continue
        try:
            hints[key] = eval(value, globalns)  # the annotations of the user's own function
        except Exception:
            log.warning(
                "cannot resolve the annotation %r of %r; its schema allows anything", value, obj
            )
    return hints


# --- docstrings ----------------------------------------------------------------------------

_GOOGLE_ARGS = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_GOOGLE_ANY = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?::\s*(.*))?$")
_SPHINX_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]*?))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into (description, {parameter: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    body_end = len(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _GOOGLE_ARGS.match(stripped) and not line.startswith((" ", "\t")):
            body_end = min(body_end, i)
            i = _google_section(lines, i + 1, params)
            continue
        if i + 1 < len(lines) and _NUMPY_UNDERLINE.match(lines[i + 1]) and stripped:
            body_end = min(body_end, i)
            if stripped.lower() in ("parameters", "other parameters", "keyword arguments"):
                i = _numpy_section(lines, i + 2, params)
            else:
                i += 2
            continue
        if stripped.startswith(":") and _SPHINX_FIELD.match(stripped):
            body_end = min(body_end, i)
            i = _sphinx_field(lines, i, params)
            continue
        if (
            _GOOGLE_ANY.match(stripped)
            and not line.startswith((" ", "\t"))
            and stripped[:-1].strip() in _GOOGLE_OTHER
        ):
            body_end = min(body_end, i)
        i += 1
    paragraphs = "\n".join(lines[:body_end]).strip().split("\n\n")
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return description, params


_GOOGLE_OTHER = {
    "Returns",
    "Return",
    "Yields",
    "Yield",
    "Raises",
    "Examples",
    "Example",
    "Note",
    "Notes",
    "See Also",
    "Warning",
    "Warnings",
    "References",
    "Attributes",
    "Todo",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_section(lines: list[str], i: int, params: dict[str, str]) -> int:
    item_indent: int | None = None
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        ind = _indent(line)
        if ind == 0:
            return i
        if item_indent is None:
            item_indent = ind
        match = _GOOGLE_ITEM.match(line.strip()) if ind <= item_indent else None
        if match:
            current = match.group(1)
            params[current] = match.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
        i += 1
    return i


def _numpy_section(lines: list[str], i: int, params: dict[str, str]) -> int:
    current: list[str] = []
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _NUMPY_UNDERLINE.match(lines[i + 1]) and line.strip():
            return i
        if not line.strip():
            i += 1
            continue
        if _indent(line) == 0:
            match = _NUMPY_ITEM.match(line.strip())
            if match:
                # "x, y : int" documents several parameters at once.
                names = [n.strip().lstrip("*") for n in line.split(":")[0].split(",")]
                current = [n for n in names if n]
                for name in current:
                    params[name] = ""
            else:
                current = []
        else:
            for name in current:
                params[name] = (params[name] + " " + line.strip()).strip()
        i += 1
    return i


def _sphinx_field(lines: list[str], i: int, params: dict[str, str]) -> int:
    match = _SPHINX_FIELD.match(lines[i].strip())
    assert match is not None
    kind, spec, text = match.group(1), match.group(2) or "", match.group(3)
    base = _indent(lines[i])
    i += 1
    while i < len(lines) and lines[i].strip() and _indent(lines[i]) > base:
        text += " " + lines[i].strip()
        i += 1
    if kind in ("param", "parameter", "arg", "argument", "key", "keyword") and spec:
        name = spec.split()[-1].lstrip("*")
        params[name] = text.strip()
    return i


# --- building tools ------------------------------------------------------------------------


def _is_method_like(fn: Any) -> bool:
    """A plain function whose first parameter is an unannotated ``self``/``cls``."""
    if not inspect.isfunction(fn):
        return False
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return (
        bool(params)
        and params[0].name in ("self", "cls")
        and params[0].annotation is inspect.Parameter.empty
    )


def _function_schema(fn: Callable[..., Any], docs: Mapping[str, str]) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot read the signature of {fn!r}: {exc}") from None
    hints = _safe_hints(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    params = list(sig.parameters.values())
    if _is_method_like(fn):
        params = params[1:]
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(param.name, param.empty)
        schema = json_schema_for(hint)
        if param.name in docs and docs[param.name] and "description" not in schema:
            schema["description"] = docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = param.default
            if isinstance(default, enum.Enum):
                default = default.value
            if default is None or isinstance(default, (str, int, float, bool)):
                schema["default"] = default
        props[param.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def tool_from_function(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool:
    """Declare ``fn`` as a tool: schema from its signature and hints, texts from its docstring."""
    if isinstance(fn, Tool):
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = timeout
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        if parameters is not None:
            changes["parameters"] = dict(parameters)
        return attrs.evolve(fn, **changes) if changes else fn
    if not callable(fn):
        raise InvalidInput(f"a tool must be a callable, a Tool or a dict, got {fn!r}")
    if name is None:
        name = getattr(fn, "__name__", None) or type(fn).__name__
        if not _NAME_RE.fullmatch(name):
            raise InvalidInput(
                f"cannot use {name!r} as a tool name (must match ^[a-zA-Z0-9_-]{{1,64}}$);"
                " pass name=..."
            )
    summary, docs = parse_docstring(inspect.getdoc(fn))
    if parameters is None:
        parameters = _function_schema(fn, docs)
    return Tool(
        name=name,
        description=summary if description is None else description,
        parameters=dict(parameters),
        fn=fn,
        timeout=timeout,
    )


@typing.overload
def tool(fn: Callable[..., Any]) -> Tool: ...


@typing.overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: ``@tool`` or ``@tool(name=..., description=..., parameters=..., timeout=...)``.

    The decorated name becomes a :class:`Tool`, which stays callable like the function.
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return tool_from_function(
            f, name=name, description=description, parameters=parameters, timeout=timeout
        )

    if fn is None:
        return wrap
    return wrap(fn)


def as_tools(
    items: Iterable[Any] | Callable[..., Any] | Tool | Mapping[str, Any] | None,
) -> tuple[Tool, ...]:
    """Normalise ``tools=[fn, Tool, wire_dict, ...]`` into Tools; duplicate names are refused."""
    if items is None:
        return ()
    seq: Iterable[Any]
    if isinstance(items, (Tool, Mapping)) or (callable(items) and not isinstance(items, type)):
        seq = [items]
    elif isinstance(items, Iterable) and not isinstance(items, (str, bytes)):
        seq = items
    else:
        raise InvalidInput(f"tools must be functions, Tools or dicts, got {items!r}")
    out: list[Tool] = []
    seen: set[str] = set()
    for item in seq:
        if isinstance(item, Tool):
            t = item
        elif isinstance(item, Mapping):
            t = Tool.from_wire(item)
        elif callable(item):
            t = tool_from_function(item)
        else:
            raise InvalidInput(f"a tool must be a callable, a Tool or a dict, got {item!r}")
        if t.name in seen:
            raise InvalidInput(f"duplicate tool name {t.name!r}: tool names must be unique")
        seen.add(t.name)
        out.append(t)
    return tuple(out)
