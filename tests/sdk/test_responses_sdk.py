"""The Responses API through the official `openai` SDK: create, retrieve, delete, stream,
and `previous_response_id` continuing a conversation on another cloud."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

SINGLE_CLOUD_MODELS = {"azure-only": "azure-us", "local-only": "local-openai", "claude-sonnet": "anthropic"}


def client(gateway, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=key or gateway.keys["team"], max_retries=0)


@pytest.mark.parametrize("model,cloud", sorted(SINGLE_CLOUD_MODELS.items()))
def test_create_retrieve_delete(gateway, model, cloud):
    c = client(gateway)
    raw = c.responses.with_raw_response.create(model=model, input="Hello!", instructions="Be brief.")
    assert raw.headers["x-anycloud-cloud"] == cloud
    r = raw.parse()
    assert r.status == "completed"
    assert r.output_text.startswith(f"Hello from {cloud}")
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    again = c.responses.retrieve(r.id)
    assert again.id == r.id and again.output_text == r.output_text
    items = c.responses.input_items.list(r.id)
    assert [i.content for i in items.data] == ["Hello!"] or items.data[0].type == "message"
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)


@pytest.mark.parametrize("model,cloud", sorted(SINGLE_CLOUD_MODELS.items()))
def test_streaming(gateway, model, cloud):
    c = client(gateway)
    deltas, final = [], None
    with c.responses.stream(model=model, input="Stream to me") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert cloud in final.output_text
    assert final.usage.output_tokens > 0
    assert c.responses.retrieve(final.id).output_text == final.output_text


def test_second_turn_on_another_cloud_keeps_the_history(gateway):
    c = client(gateway)
    first = c.responses.create(model="azure-only", input="My name is Ada.")
    second = c.responses.create(model="local-only", input="What is my name?", previous_response_id=first.id)
    assert "local-openai" in second.output_text
    assert second.previous_response_id == first.id


def test_function_call_round_trip(gateway):
    c = client(gateway)
    tools = [{"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    r = c.responses.create(model="gpt-4o", input="Weather in Oslo?", tools=tools)
    call = next(o for o in r.output if o.type == "function_call")
    assert call.name == "get_weather" and '"city"' in call.arguments
    r2 = c.responses.create(model="gpt-4o", tools=tools, previous_response_id=r.id,
                            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert "sunny" in r2.output_text


def test_other_tenant_cannot_see_a_response(gateway):
    r = client(gateway).responses.create(model="gpt-4o", input="private")
    with pytest.raises(openai.NotFoundError):
        client(gateway, gateway.keys["narrow"]).responses.retrieve(r.id)
