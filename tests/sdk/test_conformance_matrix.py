"""The conformance matrix: every ingress API × every cloud × every case, as one generated table.

- Ingress APIs, each driven by its official SDK, unmodified: OpenAI Chat Completions
  (`openai`) and Anthropic Messages (`anthropic`).
- Clouds: one model per provider the gateway speaks (Azure OpenAI, OpenAI-compatible,
  OpenAI, Anthropic, Bedrock Converse, Vertex Gemini, Claude on Vertex, OCI), each model
  deployed on that cloud alone, so `x-anycloud-cloud` proves which protocol served it.
- Cases: a plain answer, a streamed answer, a tool call round trip (call, result, final
  answer), and usage: the cloud's own token counts reach the client's `usage`, streams
  included.

The emulators answer deterministically (crates/anycloud-emulators/src/reply.rs): text
replies are `Hello from <emulator> (<model>). You said: …` and count one completion token
per word, which differs from any estimate the gateway could make, so a matching count
shows the number came from the cloud.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import anthropic
import openai
import pytest


@dataclass(frozen=True)
class Cloud:
    model: str  # the gateway's public model name
    cloud: str  # the gateway's cloud name (x-anycloud-cloud)
    emulator: str  # the name the emulator signs its replies with
    provider: str  # for the test id


CLOUDS = [
    Cloud("azure-only", "azure-us", "azure-us", "azure_openai"),
    Cloud("local-only", "local-openai", "local-openai", "openai_compatible"),
    Cloud("openai-direct", "openai", "local-openai", "openai"),
    Cloud("claude-sonnet", "anthropic", "anthropic", "anthropic"),
    Cloud("bedrock-claude", "aws-eu", "aws-eu", "bedrock"),
    Cloud("gemini", "gcp-eu", "gcp-eu", "vertex_gemini"),
    Cloud("claude-vertex", "gcp-eu", "gcp-eu", "vertex_claude"),
    Cloud("llama", "oci-eu", "oci-eu", "oci"),
]
INGRESS = ["chat_completions", "messages"]
CASES = ["plain", "stream", "tool_round_trip", "usage"]

PROMPT = "Tell me about the conformance matrix"
# JSON text, so clouds that want an object for a tool result (Gemini's functionResponse)
# pass it through unchanged.
TOOL_RESULT = '{"temp_c":12}'
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass
class Answer:
    text: str
    cloud: str
    input_tokens: int
    output_tokens: int


@dataclass
class ToolTurn:
    name: str
    arguments: dict
    final_text: str
    cloud: str


class ChatCompletions:
    """The OpenAI SDK against /v1/chat/completions."""

    def __init__(self, gateway):
        self.c = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["team"], max_retries=0)

    def plain(self, model: str) -> Answer:
        raw = self.c.chat.completions.with_raw_response.create(
            model=model, max_tokens=200, messages=[{"role": "user", "content": PROMPT}]
        )
        r = raw.parse()
        assert r.object == "chat.completion" and r.model == model
        assert r.choices[0].finish_reason == "stop"
        return Answer(r.choices[0].message.content, raw.headers["x-anycloud-cloud"], r.usage.prompt_tokens, r.usage.completion_tokens)

    def stream(self, model: str) -> Answer:
        raw = self.c.chat.completions.with_raw_response.create(
            model=model,
            max_tokens=200,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage, finishes, deltas = "", None, [], 0
        for chunk in raw.parse():
            assert chunk.object == "chat.completion.chunk" and chunk.model == model
            if chunk.usage is not None:
                usage = chunk.usage
            for ch in chunk.choices:
                if ch.delta.content:
                    text += ch.delta.content
                    deltas += 1
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
        assert finishes == ["stop"], finishes
        assert deltas >= 1
        assert usage is not None, "include_usage asked for a usage chunk"
        return Answer(text, raw.headers["x-anycloud-cloud"], usage.prompt_tokens, usage.completion_tokens)

    def tool_round_trip(self, model: str) -> ToolTurn:
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA}}]
        question = {"role": "user", "content": "Weather in Oslo?"}
        raw = self.c.chat.completions.with_raw_response.create(model=model, max_tokens=200, tools=tools, messages=[question])
        first = raw.parse()
        assert first.choices[0].finish_reason == "tool_calls"
        call = first.choices[0].message.tool_calls[0]
        assert call.type == "function" and call.id
        second = self.c.chat.completions.create(
            model=model,
            max_tokens=200,
            tools=tools,
            messages=[
                question,
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
            ],
        )
        assert second.choices[0].finish_reason == "stop"
        return ToolTurn(call.function.name, json.loads(call.function.arguments), second.choices[0].message.content, raw.headers["x-anycloud-cloud"])


class Messages:
    """The Anthropic SDK against /v1/messages."""

    def __init__(self, gateway):
        self.c = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.keys["team"], max_retries=0)

    def plain(self, model: str) -> Answer:
        raw = self.c.messages.with_raw_response.create(model=model, max_tokens=200, messages=[{"role": "user", "content": PROMPT}])
        m = raw.parse()
        assert m.type == "message" and m.role == "assistant" and m.model == model
        assert m.stop_reason == "end_turn"
        assert [b.type for b in m.content] == ["text"]
        return Answer(m.content[0].text, raw.headers["x-anycloud-cloud"], m.usage.input_tokens, m.usage.output_tokens)

    def stream(self, model: str) -> Answer:
        with self.c.messages.with_streaming_response.create(
            model=model, max_tokens=200, messages=[{"role": "user", "content": PROMPT}], stream=True
        ) as resp:
            cloud = resp.headers["x-anycloud-cloud"]
            kinds, text, usage_in, usage_out, stop = [], "", None, None, None
            for event in resp.parse():
                kinds.append(event.type)
                if event.type == "message_start":
                    usage_in = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text += event.delta.text
                elif event.type == "message_delta":
                    usage_out = event.usage.output_tokens
                    # The final counts: message_start is sent before every cloud has
                    # reported its input tokens; current SDKs read them from here.
                    if getattr(event.usage, "input_tokens", None) is not None:
                        usage_in = event.usage.input_tokens
                    stop = event.delta.stop_reason
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
        assert "content_block_start" in kinds and "content_block_stop" in kinds
        assert stop == "end_turn"
        assert usage_in is not None and usage_out is not None
        return Answer(text, cloud, usage_in, usage_out)

    def tool_round_trip(self, model: str) -> ToolTurn:
        tools = [{"name": "get_weather", "description": "Weather by city", "input_schema": WEATHER_SCHEMA}]
        question = {"role": "user", "content": "Weather in Oslo?"}
        with self.c.messages.stream(model=model, max_tokens=200, tools=tools, messages=[question]) as stream:
            first = stream.get_final_message()
        assert first.stop_reason == "tool_use"
        call = next(b for b in first.content if b.type == "tool_use")
        second = self.c.messages.with_raw_response.create(
            model=model,
            max_tokens=200,
            tools=tools,
            messages=[
                question,
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}]},
            ],
        )
        final = second.parse()
        assert final.stop_reason == "end_turn"
        return ToolTurn(call.name, call.input, final.content[0].text, second.headers["x-anycloud-cloud"])


def ingress(gateway, name: str):
    return ChatCompletions(gateway) if name == "chat_completions" else Messages(gateway)


def expected_text(c: Cloud) -> str:
    return f"Hello from {c.emulator} ("


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cloud", CLOUDS, ids=[c.provider for c in CLOUDS])
@pytest.mark.parametrize("api", INGRESS)
def test_matrix(gateway, api, cloud, case):
    client = ingress(gateway, api)
    if case == "plain":
        a = client.plain(cloud.model)
        assert a.cloud == cloud.cloud
        assert a.text.startswith(expected_text(cloud)), a.text
        assert a.text.endswith(f"You said: {PROMPT}"), a.text
    elif case == "stream":
        a = client.stream(cloud.model)
        assert a.cloud == cloud.cloud
        assert a.text.startswith(expected_text(cloud)), a.text
        assert a.text.endswith(f"You said: {PROMPT}"), a.text
    elif case == "tool_round_trip":
        t = client.tool_round_trip(cloud.model)
        assert t.cloud == cloud.cloud
        assert t.name == "get_weather"
        assert t.arguments == {"city": "Oslo"}
        assert t.final_text == f"Tool result received from {cloud.emulator}: {TOOL_RESULT}"
    else:
        plain, streamed = client.plain(cloud.model), client.stream(cloud.model)
        # The emulators count one completion token per word of the reply.
        assert plain.output_tokens == len(plain.text.split()), (plain.output_tokens, plain.text)
        assert plain.input_tokens > 0
        # A stream reports the same counts as the same request without one.
        assert (streamed.input_tokens, streamed.output_tokens) == (plain.input_tokens, plain.output_tokens)
