"""Runnable samples for dashscope_rt (importable so the tests can drive their logic)."""
