"""The package's public surface: ``__all__`` is sorted, complete and importable (as httpx does)."""

from __future__ import annotations

import importlib
import types

import dashscope_rt

PUBLIC_MODULES = ("errors", "models", "events", "config", "session")


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and dunders."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted() -> None:
    assert dashscope_rt.__all__ == sorted(dashscope_rt.__all__, key=_isort_key)


def test_all_names_resolve() -> None:
    for name in dashscope_rt.__all__:
        assert hasattr(dashscope_rt, name), name


def test_all_is_complete() -> None:
    """Every public name bound in the package namespace is listed, and nothing else."""
    public = {
        name
        for name, value in vars(dashscope_rt).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(dashscope_rt.__all__) - {"__version__"}


def test_core_module_exports_are_reexported() -> None:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(f"dashscope_rt.{module_name}")
        missing = sorted(set(module.__all__) - set(dashscope_rt.__all__))
        assert not missing, f"dashscope_rt.{module_name} exports {missing} not in dashscope_rt"
