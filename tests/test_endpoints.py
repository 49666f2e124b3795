"""Where a session connects: region hosts, workspace hosts, an explicit URL; ``Session.url``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt._hosts import REGION_IDS, region_key, workspace_endpoint
from dashscope_rt.errors import InvalidInput, UnsupportedByModel
from dashscope_rt.models import get_model
from dashscope_rt.session import Session

Q38 = "qwen3.8-omni-flash-realtime"
FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test-endpoints-5ecret"
PATH = "/api-ws/v1/realtime"


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("cn", "ws-1.cn-beijing.maas.aliyuncs.com"),
        ("cn-beijing", "ws-1.cn-beijing.maas.aliyuncs.com"),
        ("intl", "ws-1.ap-southeast-1.maas.aliyuncs.com"),
        ("ap-southeast-1", "ws-1.ap-southeast-1.maas.aliyuncs.com"),
    ],
)
def test_qwen38_connects_to_its_workspace_host(region: str, host: str) -> None:
    s = Session(Q38, api_key=KEY, workspace="ws-1", region=region)
    assert s.url == f"wss://{host}{PATH}?model={Q38}"
    assert s.state == "new"  # nothing was dialled


def test_async_session_shows_the_same_url() -> None:
    from dashscope_rt import AsyncSession

    s = AsyncSession(Q38, api_key=KEY, workspace="ws-1")
    assert s.url == s.session.url == f"wss://ws-1.cn-beijing.maas.aliyuncs.com{PATH}?model={Q38}"


def test_qwen38_without_a_workspace_is_refused_before_connecting() -> None:
    with pytest.raises(InvalidInput, match="workspace=") as info:
        Session(Q38, api_key=KEY)
    text = str(info.value)
    assert "cn-beijing.maas.aliyuncs.com" in text and "wss://dashscope.aliyuncs.com" in text
    with pytest.raises(InvalidInput, match="ap-southeast-1"):
        Session(Q38, api_key=KEY, region="intl")


def test_an_explicit_url_always_wins() -> None:
    # Captured 3.8 traffic (Sept 2026) ran on the public Beijing host: the user may choose it.
    public = "wss://dashscope.aliyuncs.com/api-ws/v1/realtime"
    assert Session(Q38, api_key=KEY, url=public).url == f"{public}?model={Q38}"
    s = Session(Q38, api_key=KEY, url="ws://127.0.0.1:9/x", workspace="ws-1")
    assert s.url == f"ws://127.0.0.1:9/x?model={Q38}"


def test_other_models_use_the_public_host_unless_a_workspace_is_given() -> None:
    assert Session(FLASH, api_key=KEY).url.startswith("wss://dashscope.aliyuncs.com/")
    assert Session(FLASH, api_key=KEY, region="intl").url.startswith(
        "wss://dashscope-intl.aliyuncs.com/"
    )
    s = Session(FLASH, api_key=KEY, workspace="llm-abc123", region="intl")
    assert s.url == f"wss://llm-abc123.ap-southeast-1.maas.aliyuncs.com{PATH}?model={FLASH}"
    assert "llm-abc123.ap-southeast-1" in repr(s)


@pytest.mark.parametrize("bad", ["ws.1", "ws/1", "-ws", "a" * 64, "ws 1", "ws@evil.com#"])
def test_a_workspace_id_that_cannot_be_a_host_label_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="workspace must be a workspace id"):
        Session(FLASH, api_key=KEY, workspace=bad)


def test_unknown_region_names_the_accepted_ones() -> None:
    with pytest.raises(InvalidInput, match="'cn' \\(cn-beijing\\), 'intl' \\(ap-southeast-1\\)"):
        Session(FLASH, api_key=KEY, region="mars")
    with pytest.raises(InvalidInput, match="region"):
        region_key("us-east-1")


def test_a_region_the_model_is_not_served_from_is_refused() -> None:
    import attrs

    beijing_only = attrs.evolve(get_model(Q38), regions=("cn-beijing",))
    with pytest.raises(UnsupportedByModel, match="use region= one of: cn"):
        workspace_endpoint(beijing_only, region="intl", workspace="ws-1")
    assert workspace_endpoint(beijing_only, region="cn", workspace="ws-1") == (
        f"wss://ws-1.cn-beijing.maas.aliyuncs.com{PATH}"
    )


def test_url_hides_credentials_but_not_the_host() -> None:
    s = Session(FLASH, api_key=KEY, url="wss://bob:pw@h.example/p?api_key=sk-live-123&x=1")
    assert s.url == f"wss://***@h.example/p?api_key=***&x=1&model={FLASH}"
    assert KEY not in repr(s) and "sk-live-123" not in repr(s) and "pw@" not in repr(s)


@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True))
def test_every_valid_workspace_id_makes_a_host_of_its_own(workspace: str) -> None:
    for key, region_id in REGION_IDS.items():
        url = workspace_endpoint(get_model(Q38), region=key, workspace=workspace)
        assert url == f"wss://{workspace}.{region_id}.maas.aliyuncs.com{PATH}"
