"""Tool declarations: schema from signatures and docstrings, decorators, invoke."""

from __future__ import annotations

import enum
import json
import typing
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt.errors import InvalidInput, ToolArgumentsError
from dashscope_rt.tools import (
    Tool,
    as_tools,
    json_schema_for,
    parse_arguments,
    parse_docstring,
    tool,
    tool_from_function,
)


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (list, {"type": "array"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (typing.List[str], {"type": "array", "items": {"type": "string"}}),  # noqa: UP006
        (tuple, {"type": "array"}),
        (typing.Tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),  # noqa: UP006
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (dict, {"type": "object"}),
        (dict[str, Any], {"type": "object"}),
        (
            typing.Dict[str, float],  # noqa: UP006
            {"type": "object", "additionalProperties": {"type": "number"}},
        ),
        (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045
        (Union[int, str], {"type": ["integer", "string"]}),  # noqa: UP007
        (
            Optional[Unit],  # noqa: UP045
            {"anyOf": [{"type": "string", "enum": ["celsius", "fahrenheit"]}, {"type": "null"}]},
        ),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Unit, {"type": "string", "enum": ["celsius", "fahrenheit"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (Annotated[str, "the city"], {"type": "string", "description": "the city"}),
        (Any, {}),
        (
            list[Unit | None],
            {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        {"type": "null"},
                    ]
                },
            },
        ),
    ],
)
def test_json_schema_for(hint: Any, schema: dict[str, Any]) -> None:
    assert json_schema_for(hint) == schema


def weather(
    city: Annotated[str, "City name"], unit: Unit = Unit.CELSIUS, days: int = 1
) -> dict[str, Any]:
    """Get the weather forecast for a city.

    Uses the national weather service.

    Args:
        city: ignored, Annotated wins.
        unit: Temperature unit.
        days (int): How many days,
            counting today.

    Returns:
        A forecast.
    """
    return {"city": city, "unit": unit.value, "days": days, "unit_is_enum": isinstance(unit, Unit)}


def test_schema_from_function_google_style() -> None:
    t = tool_from_function(weather)
    assert t.name == "weather"
    assert (
        t.description
        == "Get the weather forecast for a city.\n\nUses the national weather service."
    )
    assert t.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {
                "type": "string",
                "enum": ["celsius", "fahrenheit"],
                "description": "Temperature unit.",
                "default": "celsius",
            },
            "days": {
                "type": "integer",
                "description": "How many days, counting today.",
                "default": 1,
            },
        },
        "required": ["city"],
    }
    assert t.to_wire() == {
        "type": "function",
        "function": {"name": "weather", "description": t.description, "parameters": t.parameters},
    }
    json.dumps(t.to_wire())  # serialisable


def numpy_style(x: float, y: float | None = None, *, label: str = "") -> str:
    """Plot a point.

    Parameters
    ----------
    x : float
        Horizontal position
        in metres.
    y : float, optional
        Vertical position.
    label : str
        A label.

    Returns
    -------
    str
        The id.
    """
    return f"{x},{y},{label}"


def test_numpy_docstring() -> None:
    t = tool_from_function(numpy_style)
    props = t.parameters["properties"]
    assert t.description == "Plot a point."
    assert props["x"] == {"type": "number", "description": "Horizontal position in metres."}
    assert props["y"] == {
        "type": ["number", "null"],
        "description": "Vertical position.",
        "default": None,
    }
    assert props["label"]["description"] == "A label."
    assert t.parameters["required"] == ["x"]


def sphinx_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    :param query: What to look for,
        in plain words.
    :param int limit: At most this many.
    :type query: str
    :returns: Matching titles.
    """
    return [query] * limit


def test_sphinx_docstring() -> None:
    t = tool_from_function(sphinx_style)
    props = t.parameters["properties"]
    assert t.description == "Search the catalogue."
    assert props["query"]["description"] == "What to look for, in plain words."
    assert props["limit"]["description"] == "At most this many."
    assert "Matching" not in t.description


def test_parse_docstring_edge_cases() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("One line.") == ("One line.", {})
    desc, params = parse_docstring("Summary\nwrapped.\n\nArgs:\n  a: first\n  b (int): second\n")
    assert desc == "Summary wrapped."
    assert params == {"a": "first", "b": "second"}


def test_future_annotations_and_pep604_strings() -> None:
    # This module uses `from __future__ import annotations`: every annotation is a string.
    def f(a: int | None, b: list[str] | None = None) -> None:
        """Doc."""

    props = tool_from_function(f).parameters["properties"]
    assert props["a"] == {"type": ["integer", "null"]}
    assert props["b"] == {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
        "default": None,
    }


def test_unresolvable_annotation_accepts_anything() -> None:
    def f(a: NotDefinedAnywhere, b: int) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    t = tool_from_function(f)
    assert t.parameters["properties"] == {"a": {}, "b": {"type": "integer"}}
    assert t.parameters["required"] == ["a", "b"]


def test_no_annotations_and_varargs() -> None:
    def f(a, *args, b=3, **kwargs):  # type: ignore[no-untyped-def]
        return [a, args, b, kwargs]

    t = tool_from_function(f)
    assert t.parameters == {
        "type": "object",
        "properties": {"a": {}, "b": {"default": 3}},
        "required": ["a"],
    }
    # **kwargs accepts unknown keys.
    assert json.loads(t.invoke('{"a": 1, "z": 2}')) == [1, [], 3, {"z": 2}]


def test_decorator_forms() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @tool(name="mul-2", description="Multiply.")
    def mul(a: int, b: int = 2) -> int:
        return a * b

    assert isinstance(add, Tool) and isinstance(mul, Tool)
    assert add(2, 3) == 5 and mul(4) == 8  # still callable as functions
    assert add.name == "add" and add.description == "Add two numbers."
    assert mul.name == "mul-2" and mul.description == "Multiply."
    assert add.invoke(' {"a": 2, "b": 3}') == "5"
    assert mul.invoke({"a": 3}) == "6"


def test_decorator_with_explicit_parameters() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @tool(parameters=params)
    def search(**kwargs: Any) -> str:
        return str(kwargs["q"])

    assert search.parameters == params
    assert search.invoke('{"q": "x"}') == "x"


def test_decorated_method_binds_self() -> None:
    class Shop:
        def __init__(self) -> None:
            self.stock = {"apple": 3}

        @tool
        def count(self, item: str) -> int:
            """How many of an item are in stock."""
            return self.stock.get(item, 0)

    shop = Shop()
    assert "self" not in Shop.count.parameters["properties"]
    assert shop.count("apple") == 3
    assert shop.count.invoke('{"item": "apple"}') == "3"


def test_invoke_results_and_enum_coercion() -> None:
    t = tool_from_function(weather)
    out = json.loads(t.invoke(' {"city": "杭州", "unit": "fahrenheit"}'))
    assert out == {"city": "杭州", "unit": "fahrenheit", "days": 1, "unit_is_enum": True}
    assert "杭州" in t.invoke({"city": "杭州"})  # ensure_ascii=False

    def pair(p: tuple[int, int]) -> str:
        return type(p).__name__

    assert tool_from_function(pair).invoke('{"p": [1, 2]}') == "tuple"

    def nothing() -> None:
        return None

    assert tool_from_function(nothing).invoke("") == "null"
    assert tool_from_function(nothing).invoke("   ") == "null"

    def odd() -> object:
        return {"when": Unit.CELSIUS, "s": {1}, "x": object}

    assert json.loads(tool_from_function(odd).invoke("{}"))["when"] == "celsius"


def test_invoke_errors() -> None:
    t = tool_from_function(weather)
    with pytest.raises(ToolArgumentsError) as bad_json:
        t.invoke(' {"city": ')
    assert "weather" in str(bad_json.value) and '{"city": ' in str(bad_json.value)
    assert isinstance(bad_json.value, InvalidInput)
    with pytest.raises(ToolArgumentsError, match=r"missing required argument.*city"):
        t.invoke("{}")
    with pytest.raises(ToolArgumentsError, match=r"unknown argument.*color"):
        t.invoke('{"city": "x", "color": "red"}')
    with pytest.raises(ToolArgumentsError, match="JSON object"):
        t.invoke("[1, 2]")
    with pytest.raises(InvalidInput, match="no Python function"):
        Tool(name="x").invoke("{}")


def test_function_errors_propagate() -> None:
    def boom(x: int) -> int:
        raise RuntimeError("kaput")

    with pytest.raises(RuntimeError, match="kaput"):
        tool_from_function(boom).invoke('{"x": 1}')


def test_names_are_validated() -> None:
    with pytest.raises(InvalidInput, match="a-zA-Z0-9"):
        Tool(name="has space")
    with pytest.raises(InvalidInput):
        Tool(name="x" * 65)
    Tool(name="x" * 64)
    with pytest.raises(InvalidInput, match="name="):
        tool_from_function(lambda: 1)
    assert tool_from_function(lambda: 1, name="one").invoke("") == "1"
    with pytest.raises(InvalidInput, match="object"):
        Tool(name="x", parameters={"type": "array"})


def test_as_tools_normalises_and_refuses_duplicates() -> None:
    def a(x: int) -> int:
        return x

    b = Tool(name="b", description="B", parameters={"type": "object", "properties": {}})
    nested = {
        "type": "function",
        "function": {
            "name": "c",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    flat = {"type": "function", "name": "d", "description": "D"}
    tools = as_tools([a, b, nested, flat])
    assert [t.name for t in tools] == ["a", "b", "c", "d"]
    assert tools[0].fn is a and tools[1] is b
    assert tools[2].parameters["properties"] == {"q": {"type": "string"}}
    assert tools[3].to_wire() == {
        "type": "function",
        "function": {
            "name": "d",
            "description": "D",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert as_tools(None) == () and as_tools([]) == ()
    assert [t.name for t in as_tools(a)] == ["a"]
    with pytest.raises(InvalidInput, match="duplicate tool name 'a'"):
        as_tools([a, {"type": "function", "function": {"name": "a"}}])
    with pytest.raises(InvalidInput):
        as_tools(["not a tool"])
    with pytest.raises(InvalidInput):
        as_tools("abc")
    with pytest.raises(InvalidInput):
        as_tools([{"type": "retrieval"}])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    args=st.dictionaries(st.text(), json_values, max_size=5),
    pad=st.sampled_from(["", " ", "\n ", "\t"]),
)
def test_parse_arguments_round_trip(args: dict[str, Any], pad: str) -> None:
    text = pad + json.dumps(args, ensure_ascii=False) + pad
    assert parse_arguments(text) == args
    assert parse_arguments(args) == args


@given(st.text())
def test_parse_arguments_only_raises_tool_errors(text: str) -> None:
    try:
        value = parse_arguments(text, tool="t")
    except ToolArgumentsError as exc:
        assert exc.tool == "t"
    else:
        assert isinstance(value, dict)


def test_plain_function_tool_as_class_attribute_is_not_bound() -> None:
    def echo(text: str) -> str:
        return text

    class Agent:
        speak = tool_from_function(echo)

    assert Agent().speak.invoke('{"text": "hi"}') == "hi"
    assert Agent().speak("yo") == "yo"


def test_tools_are_hashable_and_compare_by_declaration() -> None:
    def f(x: int) -> int:
        return x

    a, b = tool_from_function(f), tool_from_function(f)
    assert a == b and len({a, b}) == 1
    assert a != tool_from_function(f, description="other")


class Address(typing.TypedDict):
    city: str
    zip: str | None


def test_typed_dict_schema() -> None:
    assert json_schema_for(Address) == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
        "required": ["city", "zip"],
    }
