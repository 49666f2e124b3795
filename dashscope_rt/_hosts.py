"""Where the service listens: the public host of a region, or a workspace's own host.

docs/protocol.md §1.1: the public hosts are ``dashscope.aliyuncs.com`` (Beijing) and
``dashscope-intl.aliyuncs.com`` (Singapore); a workspace has
``wss://{WorkspaceId}.{region}.maas.aliyuncs.com/api-ws/v1/realtime``. The newest guide says
qwen3.8-omni-flash-realtime must use the workspace host. Plain functions, no I/O: the session
adds ``?model=`` with :func:`dashscope_rt.transport.build_url`.
"""

from __future__ import annotations

import re

from .errors import InvalidInput, UnsupportedByModel
from .models import ModelInfo

__all__ = ["REGION_IDS", "region_key", "workspace_endpoint"]

REGION_IDS = {"cn": "cn-beijing", "intl": "ap-southeast-1"}
"""The cloud region id of each ``region`` name (the workspace host names the region by id)."""

_PATH = "/api-ws/v1/realtime"
_PUBLIC = {
    "cn": "wss://dashscope.aliyuncs.com" + _PATH,
    "intl": "wss://dashscope-intl.aliyuncs.com" + _PATH,
}
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def region_key(region: str) -> str:
    """``"cn"`` or ``"intl"`` for a region given by name or by id (``"cn-beijing"``)."""
    for key, region_id in REGION_IDS.items():
        if region in (key, region_id):
            return key
    names = ", ".join(f"{k!r} ({v})" for k, v in REGION_IDS.items())
    raise InvalidInput(f"region must be one of {names}, got {region!r}")


def workspace_endpoint(model: ModelInfo, *, region: str, workspace: str | None) -> str | None:
    """The workspace host's endpoint (without ``?model=``), or None for the public host.

    A workspace given means its host (as the official SDK does); a model documented to need one
    (``ModelInfo.workspace_endpoint``) without one is refused here, before connecting.
    """
    key = region_key(region)
    if workspace is None or workspace == "":
        if model.workspace_endpoint:
            raise InvalidInput(
                f"{model.name} must be reached through your workspace's own endpoint "
                f"(wss://{{WorkspaceId}}.{REGION_IDS[key]}.maas.aliyuncs.com{_PATH}, as the "
                "Model Studio guide says): pass workspace='<your workspace id>' (shown in the "
                "Model Studio console). To try the public host anyway, pass "
                f"url={_PUBLIC[key]!r}"
            )
        return None
    if not isinstance(workspace, str) or not _DNS_LABEL.fullmatch(workspace):
        raise InvalidInput(
            f"workspace must be a workspace id (letters, digits and '-', as shown in the Model "
            f"Studio console), got {workspace!r}"
        )
    region_id = REGION_IDS[key]
    if model.regions and region_id not in model.regions:
        served = ", ".join(k for k, v in REGION_IDS.items() if v in model.regions)
        raise UnsupportedByModel(
            f"{model.name} is not served from the {region_id} workspace host; use region= "
            f"one of: {served}",
            model=model.name,
            feature="region",
        )
    return f"wss://{workspace}.{region_id}.maas.aliyuncs.com{_PATH}"
