"""Value checks of :mod:`dashscope_rt.config`: the attrs validators and converters of its fields.

Each raises :class:`~dashscope_rt.errors.InvalidInput` naming the field, the accepted range (from
:mod:`dashscope_rt.limits`) and, in ``param``, the field's path in the wire ``session`` object.
"""

from __future__ import annotations

import copy
import enum
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from . import limits
from .errors import InvalidInput, UnsupportedByModel
from .limits import Range

__all__ = [
    "TOOL_CHOICE_MSG",
    "UNSET",
    "UnsetType",
    "Validator",
    "boolean",
    "check_modalities",
    "choice",
    "extra_mapping",
    "modalities",
    "non_empty_str",
    "number",
    "search_options",
    "string",
    "tools",
    "vad_extra",
]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_TOOL_NAME = re.compile(limits.TOOL_NAME_PATTERN)


class UnsetType(enum.Enum):
    """Type of :data:`UNSET`, the "not set, leave the server default" marker."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = UnsetType.UNSET
"""A field left at the server's default; never sent."""

TOOL_CHOICE_MSG = (
    "tool_choice is not accepted by Qwen-Omni-Realtime: the model decides tool calls itself; "
    "remove 'tool_choice' (declare the tools and describe when to use them in the instructions)"
)

# --- validators -----------------------------------------------------------------------------


def number(rng: Range, *, prefix: str = "") -> Validator:
    """A validator for a number in ``rng`` (a range of :mod:`dashscope_rt.limits`)."""
    text = rng.describe()

    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET or rng.contains(value):
            return
        name = prefix + attr.name
        if not rng.has_type(value):
            raise InvalidInput(f"{name} must be {rng.kind} {text}, got {value!r}", param=name)
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number {text}, got {value!r}", param=name)
        raise InvalidInput(f"{name} must be {text}, got {value!r}", param=name)

    return check


def boolean(prefix: str = "", *, allow_none: bool = False) -> Validator:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET or isinstance(value, bool) or (allow_none and value is None):
            return
        what = "True, False or None" if allow_none else "True or False"
        name = prefix + attr.name
        raise InvalidInput(f"{name} must be {what}, got {value!r}", param=name)

    return check


def choice(options: Iterable[Any], what: str) -> Validator:
    opts = tuple(options)

    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET:
            return
        if isinstance(value, bool) or value not in opts or type(value) is not type(opts[0]):
            listed = ", ".join(repr(o) for o in opts)
            raise InvalidInput(
                f"{attr.name} must be one of {listed} ({what}), got {value!r}", param=attr.name
            )

    return check


def non_empty_str(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is UNSET:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"{attr.name} must be a non-empty string, got {value!r}", param=attr.name
        )


def string(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not UNSET and not isinstance(value, str):
        raise InvalidInput(
            f"{attr.name} must be a string, got {type(value).__name__}", param=attr.name
        )


# --- converters -----------------------------------------------------------------------------


class FrozenMap(Mapping[str, Any]):
    """A read-only dict copy that can still be pickled and deep-copied (unlike mappingproxy)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._data,))


def freeze_mapping(value: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name} must be a mapping, got {type(value).__name__}", param=name)
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(f"{name} keys must be strings, got {key!r}", param=name)
    return FrozenMap(copy.deepcopy(dict(value)))


def extra_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen = freeze_mapping(value, "extra")
    if "tool_choice" in frozen:
        raise UnsupportedByModel(TOOL_CHOICE_MSG, feature="tool_choice")
    return frozen


def vad_extra(value: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen = freeze_mapping(value, "turn_detection extra")
    if "type" in frozen:
        raise InvalidInput(
            "turn_detection extra must not set 'type'; use ServerVAD or SemanticVAD",
            param="turn_detection.type",
        )
    return frozen


def search_options(
    value: Mapping[str, Any] | UnsetType,
) -> Mapping[str, Any] | UnsetType:
    if value is UNSET:
        return UNSET
    frozen = freeze_mapping(value, "search_options")
    source = frozen.get("enable_source", False)
    if not isinstance(source, bool):
        raise InvalidInput(
            f"search_options.enable_source must be True or False, got {source!r}",
            param="search_options.enable_source",
        )
    return frozen


def check_modalities(value: Iterable[str]) -> tuple[str, ...]:
    """``value`` as one of :data:`~dashscope_rt.limits.MODALITIES` (``("text",)`` or
    ``("text", "audio")``), or :class:`~dashscope_rt.errors.InvalidInput` naming ``modalities``."""
    msg = "modalities must be ['text'] or ['text', 'audio'] (in any order)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput(f"{msg}, got {value!r}", param="modalities")
    items = list(value)
    if all(isinstance(m, str) for m in items) and len(set(items)) == len(items):
        for combination in limits.MODALITIES:
            if set(items) == set(combination):
                return combination
        if set(items) == {"audio"}:
            raise InvalidInput(
                f"{msg}; the server refuses ['audio'] alone: use ['text', 'audio']",
                param="modalities",
            )
    raise InvalidInput(f"{msg}, got {items!r}", param="modalities")


def modalities(value: Iterable[str] | UnsetType) -> tuple[str, ...] | UnsetType:
    return UNSET if value is UNSET else check_modalities(value)


def _check_tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    shape = (
        "{'type': 'function', 'function': {'name': ..., 'description': ..., 'parameters': {...}}}"
    )

    def bad(message: str) -> InvalidInput:
        return InvalidInput(message, param=where)

    if not isinstance(tool, Mapping):
        raise bad(f"{where} must be a dict shaped {shape}, got {type(tool).__name__}")
    if tool.get("type") != "function":
        raise bad(f"{where}.type must be 'function', got {tool.get('type')!r}")
    fn = tool.get("function")
    if not isinstance(fn, Mapping):
        hint = (
            " (the flat OpenAI-Realtime shape is not accepted by Qwen: nest name/parameters "
            "under 'function')"
            if "name" in tool
            else ""
        )
        raise bad(f"{where} must be shaped {shape}{hint}")
    name = fn.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise bad(f"{where}.function.name must match ^{limits.TOOL_NAME_PATTERN}$, got {name!r}")
    desc = fn.get("description", "")
    if not isinstance(desc, str):
        raise bad(f"{where}.function.description must be a string, got {desc!r}")
    if "parameters" in fn:
        params = fn["parameters"]
        if not isinstance(params, Mapping) or params.get("type") != "object":
            raise bad(
                f"{where}.function.parameters must be a JSON schema object "
                f"({{'type': 'object', 'properties': {{...}}, 'required': [...]}}), got {params!r}"
            )
        props = params.get("properties", {})
        if not isinstance(props, Mapping):
            raise bad(f"{where}.function.parameters.properties must be a mapping")
        required = params.get("required", [])
        if isinstance(required, str) or not isinstance(required, Sequence):
            raise bad(f"{where}.function.parameters.required must be a list of names")
        if any(not isinstance(r, str) for r in required):
            raise bad(f"{where}.function.parameters.required must be a list of names")
    return copy.deepcopy(dict(tool))


def tools(
    value: Sequence[Mapping[str, Any]] | UnsetType,
) -> tuple[dict[str, Any], ...] | UnsetType:
    if value is UNSET:
        return UNSET
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidInput(
            f"tools must be a list of tool dicts, got {type(value).__name__}", param="tools"
        )
    tools = tuple(_check_tool(t, i) for i, t in enumerate(value))
    names = [t["function"]["name"] for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(
            f"tools declares the same function name twice: {', '.join(dupes)}", param="tools"
        )
    return tools
