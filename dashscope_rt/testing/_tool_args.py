"""How the simulated model picks tool calls: every tool the user's words name, with arguments
read from the part of the sentence that names it and shaped by each parameter's JSON schema."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["guess_arguments", "mentioned_tools", "tool_function"]

_STOP = {"about", "which", "there", "their", "would", "useful", "current", "当你想查询指定城市的"}
_NAME_NOISE = {"get", "current", "fetch", "lookup", "find"}
_PREPOSITION = r"(?:in|for|at|of|near|from|to|about)"
_SPLIT = re.compile(r"[,;?!.]|\band\b|\balso\b|\bthen\b|\bplus\b", re.IGNORECASE)
_NOT_PLACES = {"the", "a", "an", "my", "your", "this", "that", "it", "me", "celsius", "fahrenheit"}
_AFTER_PLACE = {
    "right", "now", "today", "tonight", "tomorrow", "please", "like", "this", "and", "or", "at",
    "in", "on", "for", "is", "currently", "then", "with",
}  # fmt: skip
_ZONES = {
    "beijing": "Asia/Shanghai",
    "hangzhou": "Asia/Shanghai",
    "shenzhen": "Asia/Shanghai",
    "guangzhou": "Asia/Shanghai",
    "hong kong": "Asia/Hong_Kong",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "washington": "America/New_York",
    "boston": "America/New_York",
    "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
}
_UNIT_WORDS = {
    "celsius": ("celsius", "°c", "centigrade", "metric"),
    "fahrenheit": ("fahrenheit", "°f", "imperial"),
    "metric": ("metric", "celsius", "kilomet"),
    "imperial": ("imperial", "fahrenheit", "miles"),
}
_TEXT_PARAMS = ("query", "question", "text", "prompt", "message", "keyword", "topic", "search")


def tool_function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``function`` object of a tool declaration (or the declaration itself, if flat)."""
    fn = tool.get("function")
    return fn if isinstance(fn, Mapping) else tool


def _mention_at(low: str, tool: Mapping[str, Any]) -> int | None:
    """Where in ``low`` the tool is first named (its name, a word of it, or of its description)."""
    fn = tool_function(tool)
    name = str(fn.get("name", "")).lower()
    hits: list[int] = []
    for form in (name, name.replace("_", " ")):
        if form and form in low:
            hits.append(low.index(form))
    words = [p for p in re.split(r"[_\W]+", name) if len(p) >= 4 and p not in _NAME_NOISE]
    desc = str(fn.get("description", "")).lower()
    described = [w for w in re.findall(r"[a-z]{5,}", desc) if w not in _STOP]
    for word in words:
        hits += [m.start() for m in re.finditer(rf"\b{re.escape(word)}", low)]
    for word in described:
        hits += [m.start() for m in re.finditer(rf"\b{re.escape(word)}\b", low)]
    return min(hits) if hits else None


def mentioned_tools(
    text: str, tools: Sequence[Mapping[str, Any]]
) -> list[tuple[int, Mapping[str, Any]]]:
    """``(position, tool)`` for each declared tool the text names, in the order they are named."""
    low = text.lower()
    found = [(at, tool) for tool in tools if (at := _mention_at(low, tool)) is not None]
    return sorted(found, key=lambda pair: pair[0])


def _segment(text: str, at: int, until: int) -> str:
    """The words that belong to the tool named at ``at``: from the start of its clause (clauses
    end at commas, "and", ...) to the clause where the next tool is named (``until``)."""
    start, end = 0, len(text)
    for m in _SPLIT.finditer(text):
        if m.end() <= at:
            start = m.end()
        elif until < len(text) and m.end() <= until:
            end = m.start()
    return text[start:end].strip()


def _place(clause: str, text: str) -> str | None:
    """A place named in the clause: capitalised words after "in/for/at ...", else any word there."""
    for source in (clause, text):
        m = re.search(rf"\b{_PREPOSITION}\s+((?:[A-Z][\w'\-]*)(?:\s+[A-Z][\w'\-]*)*)", source)
        if m and m.group(1).lower() not in _NOT_PLACES:
            return m.group(1)
        for m in re.finditer(rf"\b{_PREPOSITION}\s+([A-Za-z][\w'\- ]*)", source):
            words = m.group(1).split()[:3]
            cut = next((i for i, w in enumerate(words) if w.lower() in _AFTER_PLACE), len(words))
            if cut and words[0].lower() not in _NOT_PLACES:
                return " ".join(words[:cut]).title()
    caps = [w for w in re.findall(r"(?<!^)(?<![.?!]\s)\b[A-Z][a-z]+\b", clause)]
    return caps[-1] if caps else None


def _time_zone(place: str | None) -> str:
    if not place:
        return "UTC"
    key = place.strip().lower()
    if key in _ZONES:
        return _ZONES[key]
    wanted = key.replace(" ", "_")
    try:
        zones = zoneinfo.available_timezones()
    except Exception:  # no tz database at all
        zones = set()
    for zone in sorted(zones):
        if zone.lower().rsplit("/", 1)[-1] == wanted:
            return zone
    return "UTC"


def _number(spec: Mapping[str, Any], clause: str, integer: bool) -> int | float:
    low, high = spec.get("minimum"), spec.get("maximum")
    for m in re.finditer(r"-?\d+(?:\.\d+)?", clause):
        value = float(m.group())
        if (low is None or value >= low) and (high is None or value <= high):
            return int(value) if integer else value
    if "default" in spec:
        return spec["default"]  # type: ignore[no-any-return]
    fallback = low if low is not None else 1
    return int(fallback) if integer else float(fallback)


def _enum(options: Sequence[Any], spec: Mapping[str, Any], clause: str) -> tuple[Any, bool]:
    """The option the words name (and True), else the default or the first option (and False)."""
    low = clause.lower()
    for option in options:
        words = _UNIT_WORDS.get(str(option).lower(), (str(option).lower(),))
        if any(w in low for w in words):
            return option, True
    return spec.get("default", options[0]), False


def _string(key: str, spec: Mapping[str, Any], clause: str, text: str) -> str:
    what = f"{key} {spec.get('description', '')}".lower()
    place = _place(clause, text)
    if "zone" in what or re.search(r"\btz\b", what):
        return _time_zone(place)
    if key.lower() in ("unit", "units") or "temperature unit" in what:
        return "fahrenheit" if "fahrenheit" in clause.lower() else "celsius"
    if spec.get("format") == "date" or key.lower().endswith("date"):
        return datetime.date.today().isoformat()
    if "language" in what or key.lower() in ("lang", "locale"):
        return "en"
    if any(word in key.lower() for word in _TEXT_PARAMS):
        return clause or text
    return place or (clause or text).strip()[:40]


def guess_arguments(
    text: str, tool: Mapping[str, Any], at: int = 0, until: int | None = None
) -> dict[str, Any]:
    """Plausible arguments for ``tool`` from the user's words, one per parameter of its schema.

    Required parameters always get a value; optional ones only when the words supply it (an enum
    option, a number, a place). ``at`` is where the tool was named and ``until`` where the next
    one is: the words between them are read first.
    """
    params = tool_function(tool).get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties") or {} if isinstance(params, Mapping) else {}
    required = set(params.get("required") or ()) if isinstance(params, Mapping) else set()
    clause = _segment(text, at, len(text) if until is None else until)
    args: dict[str, Any] = {}
    for key, spec in props.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = spec.get("type", "string")
        needed = key in required or not required
        options = spec.get("enum")
        if isinstance(options, Sequence) and not isinstance(options, str) and options:
            value, named = _enum(options, spec, clause)
            if needed or named or "default" in spec:
                args[key] = value
        elif kind in ("number", "integer"):
            named = re.search(r"\d", clause) is not None
            if needed or named:
                args[key] = _number(spec, clause, kind == "integer")
        elif kind == "boolean":
            if needed:
                args[key] = bool(spec.get("default", False))
        elif kind == "array":
            if needed:
                args[key] = [_place(clause, text) or clause]
        elif kind == "object":
            if needed:
                args[key] = {}
        elif needed or (
            key.lower() in ("unit", "units") and _enum(list(_UNIT_WORDS), {}, clause)[1]
        ):
            args[key] = _string(key, spec, clause, text)
    return args
