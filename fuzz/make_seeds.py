#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the test fixtures: the raw JSON and SSE literals
of the provider and config tests, plus one typical message per wire format (as the
emulators and tests send them). Run it again after adding fixtures; libFuzzer takes
fuzz/seeds/<target> as a read-only seed corpus beside the growing one."""

import hashlib
import json
import re
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fuzz" / "seeds"


def literals(*globs):
    """Raw string literals r#"..."# of the matching test files."""
    out = []
    for g in globs:
        for f in sorted(ROOT.glob(g)):
            out += re.findall(r'r#"(.*?)"#', f.read_text(), re.S)
    return out


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def sse(*frames):
    return "".join((f"event: {e}\n" if e else "") + f"data: {json.dumps(d) if not isinstance(d, str) else d}\n\n" for e, d in frames)


def frame(headers, payload):
    """One AWS event-stream message (big-endian prelude, CRC32 of prelude and message)."""
    h = b""
    for k, v in headers.items():
        kb, vb = k.encode(), v.encode()
        h += bytes([len(kb)]) + kb + b"\x07" + struct.pack(">H", len(vb)) + vb
    total = 12 + len(h) + len(payload) + 4
    prelude = struct.pack(">II", total, len(h))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + h + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def bedrock_event(kind, body):
    return frame({":message-type": "event", ":event-type": kind, ":content-type": "application/json"}, json.dumps(body).encode())


def main():
    prov = "crates/anycloud-providers/src/{}/*tests.rs"
    for name in ["openai", "anthropic", "bedrock", "vertex", "oci"]:
        for lit in literals(prov.format(name)):
            kind = "stream" if "data:" in lit or "event:" in lit else "response"
            put(f"{name}_{kind}", lit)
    for lit in literals("crates/anycloud-config/src/tests.rs"):
        put("config", lit + "\0secret-value-0123456789")
    put("config", '[server]\nadmin_token = "${ADMIN}"\nmetrics_listen = "127.0.0.1:9464"\n[[clouds]]\nname = "a"\nprovider = "openai_compatible"\nbase_url = "http://x/v1"\n\0admin-token-0123456789')

    chat = {"model": "gpt-4o", "stream": True, "max_tokens": 20, "temperature": 0.5,
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi"},
                                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                         {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "42"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}}
    put("ingress_chat", json.dumps(chat))
    put("ingress_chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hello!"}]}))
    msgs = {"model": "claude", "max_tokens": 50, "system": [{"type": "text", "text": "s"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"}, "stream": True}
    put("ingress_messages", json.dumps(msgs))
    put("ingress_embeddings", json.dumps({"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}))
    put("ingress_embeddings", json.dumps({"model": "e", "input": [[1, 2, 3]]}))
    put("ingress_responses", json.dumps({"model": "gpt-4o", "input": "hi", "instructions": "be brief", "stream": True}))
    put("ingress_responses", json.dumps({"model": "gpt-4o", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "1"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}}))
    put("admin_bodies", json.dumps({"name": "team-a", "jurisdictions": ["eu"], "models": ["gpt-4o"],
                                    "budget": {"usd": 10.5, "period": "day"}, "rate_limit": {"requests_per_minute": 60, "tokens_per_minute": 1000}, "capture": True}))
    put("admin_bodies", json.dumps({"tenant": "team-a", "name": "ci", "budget": {"usd": 1, "period": "month"}}))

    put("openai_response", json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "ok",
                     "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1}}}))
    put("openai_response", json.dumps({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                                       "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
    put("openai_response", json.dumps({"error": {"message": "Please retry after 6 seconds", "type": "rate_limit", "code": "429"}}))
    put("openai_stream", sse((None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "he"}}]}),
                             (None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{"}}]}, "finish_reason": "tool_calls"}]}),
                             (None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
                             (None, "[DONE]")))
    put("anthropic_response", json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 1}}))
    put("anthropic_stream", sse(("message_start", {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "c", "content": [], "usage": {"input_tokens": 3, "output_tokens": 0}}}),
                                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
                                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
                                ("message_stop", {"type": "message_stop"})))
    put("vertex_response", json.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}, {"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "STOP"}],
                                       "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}, "modelVersion": "gemini"}))
    put("vertex_response", json.dumps({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}))
    put("vertex_response", json.dumps({"predictions": [{"embeddings": {"values": [0.1], "statistics": {"token_count": 2, "truncated": False}}}]}))
    put("vertex_stream", sse((None, {"candidates": [{"content": {"role": "model", "parts": [{"text": "h"}]}}]}),
                             (None, {"candidates": [{"content": {"role": "model", "parts": [{"text": "i"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}})))
    put("oci_response", json.dumps({"modelId": "m", "chatResponse": {"apiFormat": "GENERIC", "timeCreated": "2026-01-01T00:00:00Z",
        "choices": [{"index": 0, "finishReason": "stop", "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "hi"}]}}],
        "usage": {"promptTokens": 1, "completionTokens": 1, "totalTokens": 2}}}))
    put("oci_response", json.dumps({"id": "e", "embeddings": [[0.1, 0.2]], "modelId": "m"}))
    put("oci_stream", sse((None, {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "hi"}]}}),
                          (None, {"index": 0, "finishReason": "stop"}),
                          (None, {"usage": {"promptTokens": 1, "completionTokens": 1, "totalTokens": 2}})))
    put("bedrock_response", json.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}, {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}},
                                        "stopReason": "tool_use", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}))
    put("bedrock_response", json.dumps({"message": "Too many requests"}))
    stream = (bedrock_event("messageStart", {"role": "assistant"})
              + bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
              + bedrock_event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}})
              + bedrock_event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{}"}}})
              + bedrock_event("contentBlockStop", {"contentBlockIndex": 1})
              + bedrock_event("messageStop", {"stopReason": "end_turn"})
              + bedrock_event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}))
    put("bedrock_stream", stream)
    put("bedrock_stream", frame({":message-type": "exception", ":exception-type": "throttlingException"}, b'{"message":"slow"}'))
    put("event_stream", stream)
    for f in (OUT / "openai_stream").iterdir():
        put("sse", f.read_bytes())
    for f in (OUT / "anthropic_stream").iterdir():
        put("sse", f.read_bytes())
    put("sse", "\ufeffevent: a\r\ndata: 1\r\ndata: 2\r\n: comment\r\n\r\nid: 3\nretry: 5\ndata\n\n")


if __name__ == "__main__":
    main()
