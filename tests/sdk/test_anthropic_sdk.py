"""The official `anthropic` Python SDK, unmodified, against the gateway's `/v1/messages`.

Every test runs through the emulated Anthropic cloud (`claude-sonnet`) and through the
emulated Azure OpenAI cloud (`gpt-4o`), so an Anthropic-SDK application is shown to work
whichever cloud serves it.
"""

from __future__ import annotations

import json

import anthropic
import pytest

CLOUDS = [("claude-sonnet", "anthropic"), ("gpt-4o", "azure-us")]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def client(gateway, key: str | None = None, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key or gateway.keys["team"], max_retries=0, **kw)


@pytest.mark.parametrize("model,cloud", CLOUDS)
def test_messages_create(gateway, model, cloud):
    raw = client(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello!"}],
    )
    assert raw.headers["x-anycloud-cloud"] == cloud
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == model
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text"
    assert msg.content[0].text.startswith(f"Hello from {cloud}")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


@pytest.mark.parametrize("model,cloud", CLOUDS)
def test_messages_stream(gateway, model, cloud):
    with client(gateway).messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": "Stream to me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith(f"Hello from {cloud}")
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model,cloud", CLOUDS)
def test_tool_round_trip(gateway, model, cloud):
    c = client(gateway)
    question = {"role": "user", "content": "Weather in Oslo?"}
    with c.messages.stream(model=model, max_tokens=256, tools=TOOLS, messages=[question]) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Oslo"}
    second = c.messages.create(
        model=model,
        max_tokens=256,
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}]},
        ],
    )
    assert second.content[0].text == f"Tool result received from {cloud}: 12 C"


def test_errors_are_typed_sdk_exceptions(gateway):
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(gateway, key="ac-not-a-key").messages.create(
            model="claude-sonnet", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        client(gateway).messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    before = gateway.request_counts()
    with pytest.raises(anthropic.BadRequestError) as e:
        client(gateway).messages.create(
            model="claude-sonnet", max_tokens=10, temperature=2.5, messages=[{"role": "user", "content": "x"}]
        )
    assert "temperature" in json.dumps(e.value.body)
    assert gateway.request_counts() == before


def test_overloaded_cloud_fails_over_for_the_sdk(gateway):
    # gpt-4o: Azure first; a 503 there must not reach the Anthropic SDK.
    gateway.azure.faults({"fail_next": {"count": 1, "status": 503}})
    msg = client(gateway).messages.create(model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text.startswith("Hello from")
