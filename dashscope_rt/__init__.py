"""dashscope_rt: a synchronous, threaded SDK for DashScope Qwen-Omni-Realtime."""

from ._version import __version__

__all__ = ["__version__"]
