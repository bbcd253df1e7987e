"""The gateway as an application developer sees it: the official `openai` Python SDK with
only `base_url` changed, against the real `anycloud` binary in front of two emulated clouds
(Azure OpenAI `azure-us`, OpenAI-compatible `local-openai`).

Failover tests come last in this file on purpose: they make a cloud fail, and the
tests before them expect every cloud to be healthy.
"""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import openai
import pytest
from openai import OpenAI
from conftest import METRICS_TOKEN

# model name -> the only cloud that serves it
SINGLE_CLOUD_MODELS = {"azure-only": "azure-us", "local-only": "local-openai"}
ALL_MODELS = {
    "gpt-4o",
    "azure-only",
    "local-only",
    "text-embedding-3-small",
    "claude-sonnet",
    "openai-direct",
    "bedrock-claude",
    "gemini",
    "claude-vertex",
    "llama",
}
GATEWAY_HEADERS = ("x-request-id", "x-anycloud-cloud", "x-anycloud-route")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


# ---------------------------------------------------------------- helpers


def client(gw, key: str | None = None, **kw) -> OpenAI:
    return OpenAI(base_url=gw.v1, api_key=key if key is not None else gw.keys["team"], max_retries=0, timeout=30, **kw)


def raw(gw, method: str, path: str, key: str | None = "team", **kw) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {gw.keys.get(key, key)}"
    return httpx.request(method, gw.base_url + path, headers=headers, timeout=30, **kw)


def assert_headers(headers, cloud: str | None = None) -> None:
    for h in GATEWAY_HEADERS:
        assert headers.get(h), f"response lacks {h}: {dict(headers)}"
    if cloud is not None:
        assert headers["x-anycloud-cloud"] == cloud, dict(headers)


def assert_openai_error(r: httpx.Response, status: int, type_: str, code: str | None = None) -> dict:
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["type"] == type_, err
    if code is not None:
        assert err["code"] == code, err
    return err


def sse_data(r: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    out = []
    for line in r.iter_lines():
        if line.startswith("data:"):
            out.append(line[5:].strip())
    return out


def chat_body(model: str, text: str = "hi", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


# ---------------------------------------------------------------- health


def test_health_and_readiness(gateway):
    assert raw(gateway, "GET", "/healthz", key=None).status_code == 200
    r = raw(gateway, "GET", "/readyz", key=None)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- chat


@pytest.mark.parametrize("model,cloud", SINGLE_CLOUD_MODELS.items())
def test_chat_non_streaming(gateway, model, cloud):
    c = client(gateway)
    resp = c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "What is anycloud?"}]
    )
    assert_headers(resp.headers, cloud)
    assert resp.headers["x-anycloud-route"] == f"{cloud}:ok"
    done = resp.parse()
    assert done.object == "chat.completion"
    assert done.model == model, "the response names the model the client asked for"
    assert len(done.choices) == 1
    msg = done.choices[0].message
    assert msg.role == "assistant"
    assert f"Hello from {cloud}" in msg.content
    assert "You said: What is anycloud?" in msg.content
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.prompt_tokens > 0
    assert done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


def test_chat_primary_first(gateway):
    """gpt-4o is deployed on azure-us first, local-openai second: healthy azure serves it."""
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    assert_headers(resp.headers, "azure-us")
    assert "Hello from azure-us" in resp.parse().choices[0].message.content


@pytest.mark.parametrize("model,cloud", SINGLE_CLOUD_MODELS.items())
def test_chat_streaming_without_usage(gateway, model, cloud):
    c = client(gateway)
    with c.chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": "stream please"}], stream=True
    ) as resp:
        assert_headers(resp.headers, cloud)
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = list(resp.parse())
    assert len(chunks) >= 2
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert f"Hello from {cloud}" in text and "You said: stream please" in text
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1, "all chunks of one completion share an id"
    assert all(ch.usage is None for ch in chunks), "no usage without stream_options.include_usage"
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]

    # the same text as the non-streaming answer
    whole = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "stream please"}])
    assert whole.choices[0].message.content == text


@pytest.mark.parametrize("model,cloud", SINGLE_CLOUD_MODELS.items())
def test_chat_streaming_include_usage(gateway, model, cloud):
    c = client(gateway)
    chunks = list(
        c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "count my tokens"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has empty choices"
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1]), "only the last chunk carries usage"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert f"Hello from {cloud}" in text


def test_chat_stream_raw_sse_ends_with_done(gateway):
    r = raw(gateway, "POST", "/v1/chat/completions", json=chat_body("local-only", stream=True))
    assert r.status_code == 200
    data = sse_data(r)
    assert data[-1] == "[DONE]"
    for d in data[:-1]:
        assert "error" not in json.loads(d)


# ---------------------------------------------------------------- tools


def _tool_round_trip_messages(call) -> list[dict]:
    return [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21, "sky": "clear"}'},
    ]


@pytest.mark.parametrize("model,cloud", SINGLE_CLOUD_MODELS.items())
def test_tools_non_streaming(gateway, model, cloud):
    c = client(gateway)
    first = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What's the weather in Paris?"}], tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls, choice.message
    tc = choice.message.tool_calls[0]
    assert tc.id and tc.type == "function"
    assert tc.function.name == "get_weather"
    args = json.loads(tc.function.arguments)
    assert isinstance(args, dict) and "city" in args

    call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    second = c.chat.completions.create(model=model, messages=_tool_round_trip_messages(call), tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert not second.choices[0].message.tool_calls
    assert f"Tool result received from {cloud}" in second.choices[0].message.content


@pytest.mark.parametrize("model,cloud", SINGLE_CLOUD_MODELS.items())
def test_tools_streaming(gateway, model, cloud):
    c = client(gateway)
    calls: dict[int, dict] = {}
    finish = None
    for ch in c.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    ):
        if not ch.choices:
            continue
        delta = ch.choices[0].delta
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
        finish = ch.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0], calls
    call = calls[0]
    assert call["id"] and call["name"] == "get_weather"
    assert "city" in json.loads(call["arguments"])

    text = "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(
            model=model, messages=_tool_round_trip_messages(call), tools=[WEATHER_TOOL], stream=True
        )
        if ch.choices
    )
    assert f"Tool result received from {cloud}" in text


# ---------------------------------------------------------------- embeddings


def _floats_from_b64(s: str) -> list[float]:
    b = base64.b64decode(s)
    return list(struct.unpack(f"<{len(b) // 4}f", b))


@pytest.mark.parametrize("cloud", ["azure-us", "local-openai"])
def test_embeddings_float_and_base64(gateway, cloud):
    if cloud == "local-openai":
        # azure-us is the first deployment; make it fail so local-openai serves.
        gateway.azure.faults({"fail_next": {"count": 100, "status": 503}})
    c = client(gateway)
    inputs = ["the quick brown fox", "jumps over the lazy dog"]

    resp = c.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=inputs, encoding_format="float"
    )
    assert_headers(resp.headers, cloud)
    floats = resp.parse()
    assert floats.model == "text-embedding-3-small"
    assert [d.index for d in floats.data] == [0, 1]
    vectors = [d.embedding for d in floats.data]
    assert all(isinstance(v, list) and len(v) > 0 and all(isinstance(x, float) for x in v) for v in vectors)
    assert vectors[0] != vectors[1], "different inputs embed differently"
    assert floats.usage.prompt_tokens > 0

    # The SDK's default: it asks for base64 and decodes it itself.
    seen = []
    hc = httpx.Client(event_hooks={"request": [lambda req: seen.append(json.loads(req.content))]})
    decoded = client(gateway, http_client=hc).embeddings.create(model="text-embedding-3-small", input=inputs)
    assert seen and seen[-1].get("encoding_format") == "base64", seen
    got = [d.embedding for d in decoded.data]
    assert len(got) == 2
    for a, b in zip(got, vectors):
        assert len(a) == len(b)
        assert a == pytest.approx(b, rel=1e-6, abs=1e-7)

    # Explicit base64: the SDK hands back the string; it decodes to the same vectors.
    b64 = c.embeddings.create(model="text-embedding-3-small", input=inputs, encoding_format="base64")
    for d, v in zip(b64.data, vectors):
        assert isinstance(d.embedding, str)
        assert _floats_from_b64(d.embedding) == pytest.approx(v, rel=1e-6, abs=1e-7)


def test_embeddings_single_string_and_dimensions(gateway):
    c = client(gateway)
    one = c.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    assert len(one.data) == 1
    small = c.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float", dimensions=8)
    assert len(small.data[0].embedding) == 8


def test_embeddings_on_chat_only_model_is_refused_before_any_cloud(gateway):
    before = gateway.request_counts()
    with pytest.raises(openai.APIStatusError) as ei:
        client(gateway).embeddings.create(model="local-only", input="x")
    assert 400 <= ei.value.status_code < 500, ei.value
    assert gateway.request_counts() == before


# ---------------------------------------------------------------- models


def test_models_list_and_retrieve(gateway):
    c = client(gateway)
    resp = c.models.with_raw_response.list()
    assert_headers(resp.headers, "none")
    ids = {m.id for m in resp.parse()}
    assert ids == ALL_MODELS
    m = c.models.retrieve("gpt-4o")
    assert m.id == "gpt-4o" and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")


def test_models_list_respects_tenant_allow_list(gateway):
    c = client(gateway, gateway.keys["narrow"])
    assert [m.id for m in c.models.list()] == ["local-only"]
    assert c.models.retrieve("local-only").id == "local-only"
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        c.models.retrieve("gpt-4o")


# ---------------------------------------------------------------- errors


def test_no_key_is_401(gateway):
    before = gateway.request_counts()
    for method, path, body in [
        ("POST", "/v1/chat/completions", chat_body("gpt-4o")),
        ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
        ("GET", "/v1/models", None),
    ]:
        r = raw(gateway, method, path, key=None, json=body)
        assert_openai_error(r, 401, "authentication_error")
        assert_headers(r.headers, "none")
    assert gateway.request_counts() == before


@pytest.mark.parametrize("which", ["bad", "revoked"])
def test_bad_keys_raise_authentication_error(gateway, which):
    key = {"bad": "ac-not-a-real-key-0000000000000000", "revoked": gateway.keys["revoked"]}[which]
    before = gateway.request_counts()
    with pytest.raises(openai.AuthenticationError) as ei:
        client(gateway, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 401
    assert ei.value.type == "authentication_error"
    assert_headers(ei.value.response.headers, "none")
    assert key not in ei.value.message, "the key must never be echoed back"
    assert gateway.request_counts() == before


@pytest.mark.parametrize("authorization", ["Bearer", "Basic dGVhbTp4", "ac-no-scheme", "Bearer two words"])
def test_malformed_authorization_is_401(gateway, authorization):
    # The SDK refuses to send an empty key, so these go out raw.
    r = httpx.post(
        gateway.v1 + "/chat/completions",
        headers={"Authorization": authorization},
        json=chat_body("gpt-4o"),
        timeout=30,
    )
    assert_openai_error(r, 401, "authentication_error")
    assert_headers(r.headers, "none")


def test_key_revoked_while_serving_is_refused_within_two_seconds(gateway):
    key = gateway.create_key("team", "revoke-live")
    c = client(gateway, key)
    c.chat.completions.create(model="local-only", messages=[{"role": "user", "content": "hi"}])
    gateway.cli("keys", "revoke", "--config", str(gateway.config_path), key)
    deadline = time.monotonic() + 2.5
    while True:
        try:
            c.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "a revoked key still worked after 2 s"
        time.sleep(0.1)


def test_revoked_key_is_listed_as_revoked(gateway):
    out = gateway.cli("keys", "list", "--config", str(gateway.config_path)).stdout
    assert gateway.keys["revoked"] not in out and gateway.keys["team"] not in out, "keys list never shows keys"
    revoked_lines = [l for l in out.splitlines() if "to-revoke" in l]
    assert len(revoked_lines) == 1 and revoked_lines[0].rstrip()[-1] != "-", out


def test_unknown_model_404_suggests_close_name(gateway):
    before = gateway.request_counts()
    with pytest.raises(openai.NotFoundError) as ei:
        client(gateway).chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    e = ei.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert "gpt-4o" in e.message
    assert_headers(e.response.headers, "none")
    assert gateway.request_counts() == before


def test_model_not_allowed_for_tenant_403(gateway):
    before = gateway.request_counts()
    with pytest.raises(openai.PermissionDeniedError) as ei:
        client(gateway, gateway.keys["narrow"]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    e = ei.value
    assert e.status_code == 403
    assert e.type == "permission_error"
    assert e.code == "model_not_allowed"
    assert "gpt-4o" in e.message
    assert_headers(e.response.headers, "none")
    assert gateway.request_counts() == before
    # ...while its allowed model works
    ok = client(gateway, gateway.keys["narrow"]).chat.completions.create(
        model="local-only", messages=[{"role": "user", "content": "hi"}]
    )
    assert "Hello from local-openai" in ok.choices[0].message.content


BAD_BODIES = {
    "malformed_json": b'{"model": "gpt-4o", "messages": [',
    "not_an_object": b'["gpt-4o"]',
    "missing_messages": json.dumps({"model": "gpt-4o"}).encode(),
    "missing_model": json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
    "messages_not_array": json.dumps({"model": "gpt-4o", "messages": "hi"}).encode(),
    "empty_messages": json.dumps({"model": "gpt-4o", "messages": []}).encode(),
    "unknown_role": json.dumps({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}).encode(),
    "temperature_out_of_range": json.dumps(chat_body("gpt-4o", temperature=5)).encode(),
    "stream_not_bool": json.dumps(chat_body("gpt-4o", stream="yes")).encode(),
    "tool_message_without_id": json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "tool", "content": "42"}]}
    ).encode(),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_chat_request_is_400_and_never_reaches_a_cloud(gateway, name):
    before = gateway.request_counts()
    r = raw(
        gateway,
        "POST",
        "/v1/chat/completions",
        content=BAD_BODIES[name],
        headers={"content-type": "application/json"},
    )
    assert_openai_error(r, 400, "invalid_request_error")
    assert_headers(r.headers, "none")
    assert gateway.request_counts() == before, f"{name} reached a cloud"


def test_tool_choice_for_unknown_function_never_reaches_a_cloud(gateway):
    before = gateway.request_counts()
    r = raw(
        gateway,
        "POST",
        "/v1/chat/completions",
        json=chat_body("local-only", tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
    )
    assert_openai_error(r, 400, "invalid_request_error")
    assert gateway.request_counts() == before


def test_missing_messages_names_the_param(gateway):
    r = raw(gateway, "POST", "/v1/chat/completions", json={"model": "gpt-4o"})
    err = assert_openai_error(r, 400, "invalid_request_error")
    assert err["param"] == "messages" or "messages" in err["message"], err


def test_bad_embeddings_request_is_400(gateway):
    before = gateway.request_counts()
    r = raw(gateway, "POST", "/v1/embeddings", json={"model": "text-embedding-3-small"})
    assert_openai_error(r, 400, "invalid_request_error")
    r = raw(
        gateway,
        "POST",
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
    )
    assert_openai_error(r, 400, "invalid_request_error")
    assert gateway.request_counts() == before


def test_body_too_large_is_413(gateway):
    before = gateway.request_counts()
    big = "x" * 100_000  # max_body_bytes is 65536 in the test config
    with pytest.raises(openai.APIStatusError) as ei:
        client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": big}])
    assert ei.value.status_code == 413
    body = ei.value.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    assert_headers(ei.value.response.headers, "none")
    assert gateway.request_counts() == before


def test_azure_content_filter_passes_through_as_400(gateway):
    before = gateway.request_counts()
    with pytest.raises(openai.BadRequestError) as ei:
        client(gateway).chat.completions.create(
            model="azure-only", messages=[{"role": "user", "content": "please trigger-content-filter now"}]
        )
    e = ei.value
    assert e.status_code == 400
    assert e.code == "content_filter"
    assert isinstance(e.body, dict) and "innererror" in e.body, e.body
    assert e.body["innererror"].get("code") == "ResponsibleAIPolicyViolation"
    assert_headers(e.response.headers, "azure-us")
    after = gateway.request_counts()
    assert after["azure-us"] == before["azure-us"] + 1, "exactly one attempt: a 400 is not failed over"
    assert after["local-openai"] == before["local-openai"]


def test_content_filter_on_multi_cloud_model_is_not_failed_over(gateway):
    """A content-filter 400 is the client's error: gpt-4o must not quietly retry on local-openai."""
    before = gateway.request_counts()
    with pytest.raises(openai.BadRequestError) as ei:
        client(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "trigger-content-filter"}]
        )
    assert ei.value.status_code == 400
    assert "content_filter" in ei.value.response.text
    assert ei.value.response.headers["x-anycloud-cloud"] == "azure-us"
    assert gateway.request_counts()["local-openai"] == before["local-openai"]


# ---------------------------------------------------------------- headers and metrics


def test_every_response_carries_the_gateway_headers(gateway):
    responses = {
        "chat": raw(gateway, "POST", "/v1/chat/completions", json=chat_body("local-only")),
        "stream": raw(gateway, "POST", "/v1/chat/completions", json=chat_body("azure-only", stream=True)),
        "embeddings": raw(gateway, "POST", "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}),
        "models": raw(gateway, "GET", "/v1/models"),
        "model": raw(gateway, "GET", "/v1/models/gpt-4o"),
        "401": raw(gateway, "GET", "/v1/models", key="ac-wrong"),
        "400": raw(gateway, "POST", "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}),
        "403": raw(gateway, "POST", "/v1/chat/completions", key="narrow", json=chat_body("gpt-4o")),
        "404": raw(gateway, "POST", "/v1/chat/completions", json=chat_body("gpt-5-ultra")),
        "unknown_path": raw(gateway, "GET", "/v1/nothing-here"),
        "healthz": raw(gateway, "GET", "/healthz", key=None),
    }
    expected_status = {"401": 401, "400": 400, "403": 403, "404": 404, "unknown_path": 404}
    ids = set()
    for name, r in responses.items():
        assert r.status_code == expected_status.get(name, 200), f"{name}: {r.status_code} {r.text[:300]}"
        assert_headers(r.headers)
        ids.add(r.headers["x-request-id"])
    assert len(ids) == len(responses), "request ids are unique"
    assert responses["chat"].headers["x-anycloud-cloud"] == "local-openai"
    assert responses["stream"].headers["x-anycloud-cloud"] == "azure-us"
    assert responses["embeddings"].headers["x-anycloud-cloud"] == "azure-us"
    assert responses["embeddings"].headers["x-anycloud-route"] == "azure-us:ok"
    for name in expected_status:
        assert responses[name].headers["x-anycloud-cloud"] == "none", name


def test_metrics_count_requests_per_cloud(gateway):
    c = client(gateway)
    c.chat.completions.create(model="azure-only", messages=[{"role": "user", "content": "m1"}])
    c.chat.completions.create(model="local-only", messages=[{"role": "user", "content": "m2"}])
    assert raw(gateway, "GET", "/metrics", key=None).status_code == 401
    assert raw(gateway, "GET", "/metrics", key="team").status_code == 401, "a client key is not enough"
    r = raw(gateway, "GET", "/metrics", key=METRICS_TOKEN)
    assert r.status_code == 200
    assert "text/plain" in r.headers.get("content-type", "") or "openmetrics" in r.headers.get("content-type", "")
    lines = [l for l in r.text.splitlines() if l.startswith("anycloud_requests_total{")]
    assert lines, r.text[:2000]
    clouds = {l.split('cloud="', 1)[1].split('"', 1)[0] for l in lines if 'cloud="' in l}
    assert {"azure-us", "local-openai"} <= clouds, lines
    ok_azure = [l for l in lines if 'cloud="azure-us"' in l and 'model="azure-only"' in l and 'status="200"' in l]
    assert ok_azure and float(ok_azure[0].rsplit(" ", 1)[1]) >= 1, lines


# ---------------------------------------------------------------- failover (keep last)


def test_failover_on_503_is_invisible(gateway):
    gateway.azure.faults({"fail_next": {"count": 1, "status": 503}})
    before = gateway.request_counts()
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "are you there?"}]
    )
    assert resp.status_code == 200
    assert_headers(resp.headers, "local-openai")
    assert resp.headers["x-anycloud-route"] == "azure-us:failed(upstream_503) local-openai:ok"
    assert "Hello from local-openai" in resp.parse().choices[0].message.content
    after = gateway.request_counts()
    assert after["azure-us"] == before["azure-us"] + 1
    assert after["local-openai"] == before["local-openai"] + 1


def test_failover_on_503_while_streaming_is_invisible(gateway):
    gateway.azure.faults({"fail_next": {"count": 1, "status": 503}})
    with client(gateway).chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream"}], stream=True
    ) as resp:
        assert resp.headers["x-anycloud-route"] == "azure-us:failed(upstream_503) local-openai:ok"
        assert resp.headers["x-anycloud-cloud"] == "local-openai"
        text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
    assert "Hello from local-openai" in text


@pytest.mark.parametrize("status", [429, 500, 502, 504])
def test_failover_on_other_retryable_statuses(gateway, status):
    gateway.azure.faults({"fail_next": {"count": 1, "status": status}})
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert resp.headers["x-anycloud-route"] == f"azure-us:failed(upstream_{status}) local-openai:ok"
    assert "Hello from local-openai" in resp.parse().choices[0].message.content


def test_failover_when_azure_refuses_connections(gateway):
    gateway.azure.faults({"refuse_connections": True})
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "anyone?"}]
    )
    assert resp.status_code == 200
    assert_headers(resp.headers, "local-openai")
    route = resp.headers["x-anycloud-route"]
    assert route.startswith("azure-us:failed(") and route.endswith(") local-openai:ok"), route
    assert "Hello from local-openai" in resp.parse().choices[0].message.content


def test_failover_on_first_byte_timeout(gateway):
    # first_byte_timeout_ms is 2000 for both clouds in the test config
    gateway.azure.faults({"latency_ms": 4000})
    t0 = time.monotonic()
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "slow?"}]
    )
    elapsed = time.monotonic() - t0
    assert resp.headers["x-anycloud-route"] == "azure-us:failed(timeout) local-openai:ok"
    assert "Hello from local-openai" in resp.parse().choices[0].message.content
    assert elapsed < 3.9, f"the gateway waited for the slow cloud ({elapsed:.1f}s)"


def test_all_clouds_timing_out_is_504(gateway):
    gateway.azure.faults({"latency_ms": 4000})
    gateway.local.faults({"latency_ms": 4000})
    with pytest.raises(openai.APIStatusError) as ei:
        client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 504
    assert ei.value.response.headers["x-anycloud-route"] == "azure-us:failed(timeout) local-openai:failed(timeout)"
    assert "azure-us" in ei.value.message and "local-openai" in ei.value.message


def test_embeddings_fail_over(gateway):
    gateway.azure.faults({"fail_next": {"count": 1, "status": 503}})
    resp = client(gateway).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="x", encoding_format="float"
    )
    assert resp.headers["x-anycloud-route"] == "azure-us:failed(upstream_503) local-openai:ok"
    assert len(resp.parse().data[0].embedding) > 0


def test_all_clouds_failing_is_503_listing_each(gateway):
    gateway.azure.faults({"fail_next": {"count": 1, "status": 503}})
    gateway.local.faults({"fail_next": {"count": 1, "status": 502}})
    with pytest.raises(openai.APIStatusError) as ei:
        client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    e = ei.value
    assert isinstance(e, openai.InternalServerError)
    assert e.status_code == 503
    assert "azure-us" in e.message and "local-openai" in e.message, e.message
    assert "upstream_503" in e.message and "upstream_502" in e.message, e.message
    body = e.response.json()
    assert {"message", "type", "param", "code"} <= set(body["error"]), body
    assert_headers(e.response.headers, "none")
    assert e.response.headers["x-anycloud-route"] == "azure-us:failed(upstream_503) local-openai:failed(upstream_502)"


def test_single_cloud_failure_is_503(gateway):
    # The sole cloud is retried once (with backoff) before the client gets a 503.
    gateway.local.faults({"fail_next": {"count": 2, "status": 503}})
    with pytest.raises(openai.InternalServerError) as ei:
        client(gateway).chat.completions.create(model="local-only", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 503
    assert "local-openai" in ei.value.message


def test_stream_cut_mid_way_ends_with_error_event_then_done(gateway):
    """product.md §8: after the first byte, a failure ends the stream with
    `data: {"error":{...}}` then `data: [DONE]`."""
    gateway.local.faults({"cut_stream_after": 3})
    r = raw(gateway, "POST", "/v1/chat/completions", json=chat_body("local-only", "tell me a long story", stream=True))
    assert r.status_code == 200, r.text
    assert r.headers["x-anycloud-cloud"] == "local-openai"
    data = sse_data(r)
    assert len(data) >= 3, data
    assert data[-1] == "[DONE]", data
    last = json.loads(data[-2])
    assert set(last) == {"error"}, last
    assert isinstance(last["error"].get("message"), str) and last["error"]["message"], last
    assert "type" in last["error"], last
    delivered = [json.loads(d) for d in data[:-2]]
    assert delivered and all("choices" in d for d in delivered), delivered
    text = "".join((ch["choices"][0]["delta"].get("content") or "") for ch in delivered if ch["choices"])
    full = "Hello from local-openai (gpt-4o-mini). You said: tell me a long story"
    assert text and full.startswith(text), f"what was streamed before the cut must reach the client: {text!r}"
    assert not any(ch["choices"] and ch["choices"][0].get("finish_reason") for ch in delivered), (
        "a cut stream must not pretend it finished normally"
    )


def test_stream_cut_mid_way_surfaces_as_sdk_error(gateway):
    gateway.local.faults({"cut_stream_after": 3})
    got = []
    with pytest.raises(openai.APIError):
        for ch in client(gateway).chat.completions.create(
            model="local-only", messages=[{"role": "user", "content": "tell me a long story"}], stream=True
        ):
            got.append(ch)
    assert got, "the chunks sent before the cut still reached the client"
