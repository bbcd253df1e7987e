"""Streams that survive a cloud failing mid-answer (README "Streams that survive a cloud
failing"), through the official `openai` and `anthropic` SDKs.

One gateway with `routing.resume_streams` on, in front of the emulated clouds (one
`anycloud emulate`). The emulators answer a `story:` prompt with the same text on every
cloud and continue a final assistant message where the model can, so the strongest
property holds: the text of an interrupted-and-continued stream equals, byte for byte,
the text of the same request never interrupted.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import ALL_EMULATORS, METRICS_TOKEN, clouds_toml, Proc, binary_path, free_port, start_emulators, wait_healthy

# Origin cloud → the cloud that continues: (model, origin emulator kind, origin cloud,
# continuing cloud).
PAIRS = {
    "azure-to-bedrock": ("az-bedrock", "azure_openai", "azure-us", "aws-eu"),
    "bedrock-to-vertex-claude": ("bedrock-vertex", "bedrock", "aws-eu", "gcp-eu"),
    "anthropic-to-gemini": ("anthropic-gemini", "anthropic", "anthropic", "gcp-eu"),
}
EMULATOR = {"aws-eu": "bedrock", "gcp-eu": "vertex"}
# The in-band error each origin sends.
INBAND = {
    "azure_openai": "server_error",
    "bedrock": "serviceUnavailableException",
    "anthropic": "overloaded_error",
}
# Events before the fault: a few words of text reach the client first.
AFTER = 9
REASON = {"close": "closed", "stall": "idle_timeout"}


def fault(kind: str, emulator_kind: str) -> dict:
    if kind == "close":
        return {"cut_stream_after": AFTER}
    if kind == "stall":
        return {"stall_stream_after": AFTER}
    return {"stream_error_after": {"chunks": AFTER, "type": INBAND[emulator_kind]}}


# Quick to notice a hung cloud.
TIMEOUTS = "first_byte_timeout_ms = 3000\nidle_timeout_ms = 1000"


def write_config(path: Path, listen: str, db: Path, emus: dict) -> None:
    claude_bedrock = '"anthropic.claude-3-5-sonnet-20240620-v1:0"'
    path.write_text(
        f"""
[server]
listen = "{listen}"
metrics_token = "{METRICS_TOKEN}"

[store]
url = "sqlite://{db}"

[routing]
resume_streams = true
resume_max = 1

[routing.breaker]
consecutive_failures = 1000000
error_rate = 1.0
window = 1000
min_requests = 1000
cool_down_ms = 1

[routing.retry]
max_attempts = 3

{clouds_toml(emus, TIMEOUTS)}

[[models]]
name = "az-bedrock"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools"]
[[models.deployments]]
cloud = "aws-eu"
target = {claude_bedrock}
capabilities = ["chat", "stream", "tools", "prefill"]

[[models]]
name = "bedrock-vertex"
[[models.deployments]]
cloud = "aws-eu"
target = {claude_bedrock}
capabilities = ["chat", "stream", "tools", "prefill"]
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
capabilities = ["chat", "stream", "tools", "prefill"]

[[models]]
name = "anthropic-gemini"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
capabilities = ["chat", "stream", "tools", "prefill"]
[[models.deployments]]
cloud = "gcp-eu"
target = "gemini-2.0-flash"
capabilities = ["chat", "stream", "tools", "prefill"]

[[models]]
name = "vertex-claude-anthropic"
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
capabilities = ["chat", "stream", "prefill"]
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
capabilities = ["chat", "stream", "prefill"]

# Nobody can continue: the second cloud does not declare prefill.
[[models]]
name = "no-prefill"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
[[models.deployments]]
cloud = "aws-eu"
target = {claude_bedrock}

# The same pair as az-bedrock with resuming turned off for this model.
[[models]]
name = "resume-off"
resume_streams = false
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
[[models.deployments]]
cloud = "aws-eu"
target = {claude_bedrock}
capabilities = ["chat", "stream", "prefill"]

# Three clouds, for resume_max: the continuation fails too.
[[models]]
name = "chain"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
[[models.deployments]]
cloud = "aws-eu"
target = {claude_bedrock}
capabilities = ["chat", "stream", "prefill"]
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
capabilities = ["chat", "stream", "prefill"]

[[tenants]]
name = "team"
"""
    )


class ResumeGateway:
    def __init__(self, base_url: str, key: str, emus: dict, db: Path, server: Proc):
        self.base_url = base_url
        self.key = key
        self.emus = emus
        self.db = db
        self.server = server

    def reset(self) -> None:
        for e in self.emus.values():
            e.reset()

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key=self.key, max_retries=0)

    def rows(self, sql: str, args: tuple, want: int, timeout: float = 10.0) -> list:
        """Rows of `sql` once there are at least `want` (bookkeeping is written in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            with sqlite3.connect(self.db) as c:
                rows = c.execute(sql, args).fetchall()
            if len(rows) >= want or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


@pytest.fixture(scope="module")
def gw():
    binary = binary_path()
    workdir = Path(tempfile.mkdtemp(prefix="anycloud-resume-"))
    procs: list[Proc] = []
    try:
        # The cloud emulators (not the MCP server `anycloud emulate` also runs).
        emus = {k: e for k, e in start_emulators(binary, workdir, procs).items() if k in ALL_EMULATORS}
        port = free_port()
        config = workdir / "anycloud.toml"
        db = workdir / "anycloud.db"
        write_config(config, f"127.0.0.1:{port}", db, emus)
        cp = subprocess.run(
            [str(binary), "keys", "create", "--config", str(config), "--tenant", "team"],
            cwd=workdir, capture_output=True, text=True, timeout=60, check=True,
        )
        key = cp.stdout.strip().splitlines()[-1].strip()
        server = Proc("anycloud serve", [str(binary), "serve", "--config", str(config)], workdir)
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        yield ResumeGateway(base, key, emus, db, server)
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(autouse=True)
def _clean(gw):
    gw.reset()
    yield
    gw.reset()


PROMPT = "story: a lighthouse keeper and a storm"


def chat_text(gw: ResumeGateway, model: str, **kw) -> str:
    stream = gw.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, **kw
    )
    parts = []
    roles = 0
    for chunk in stream:
        for c in chunk.choices:
            if c.delta.role:
                roles += 1
            parts.append(c.delta.content or "")
    assert roles == 1, "one role delta, however many clouds served the answer"
    return "".join(parts)


def messages_text(gw: ResumeGateway, model: str) -> str:
    with gw.anthropic().messages.stream(
        model=model, max_tokens=512, messages=[{"role": "user", "content": PROMPT}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == text
    return text


def responses_text(gw: ResumeGateway, model: str) -> str:
    c = gw.openai()
    deltas, seqs, final = [], [], None
    for event in c.responses.create(model=model, input=PROMPT, stream=True):
        seqs.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type == "response.completed":
            final = event.response
    assert seqs == list(range(len(seqs))), "sequence numbers continue without a gap"
    assert final is not None and final.output_text == "".join(deltas)
    # The stored response holds the whole answer.
    assert c.responses.retrieve(final.id).output_text == final.output_text
    return final.output_text


READERS = {"chat": chat_text, "messages": messages_text, "responses": responses_text}


@pytest.mark.parametrize("api", list(READERS))
@pytest.mark.parametrize("kind", ["close", "stall", "error"])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_interrupted_stream_continues_byte_for_byte(gw, api, kind, pair):
    model, origin_kind, origin, to = PAIRS[pair]
    read = READERS[api]
    whole = read(gw, model)
    assert len(whole.split()) == 48 and "Hello from" not in whole, whole
    gw.emus[origin_kind].faults(fault(kind, origin_kind))
    before = gw.emus[origin_kind].requests()
    continued = gw.emus[EMULATOR[to]].requests()
    resumed = read(gw, model)
    assert gw.emus[origin_kind].requests() == before + 1, "the origin cloud was asked once"
    assert gw.emus[EMULATOR[to]].requests() == continued + 1, f"{to} continued the answer"
    assert resumed == whole


def test_in_band_error_from_claude_on_vertex_continues_on_anthropic(gw):
    whole = messages_text(gw, "vertex-claude-anthropic")
    gw.emus["vertex"].faults({"stream_error_after": {"chunks": AFTER, "type": "overloaded_error"}})
    before = gw.emus["anthropic"].requests()
    assert messages_text(gw, "vertex-claude-anthropic") == whole
    assert gw.emus["anthropic"].requests() == before + 1


def raw_chat(gw: ResumeGateway, model: str, **kw) -> tuple[str, str]:
    """A chat stream read as SSE text, and its request id."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}], **kw}
    with httpx.stream(
        "POST", gw.base_url + "/v1/chat/completions", json=body,
        headers={"authorization": f"Bearer {gw.key}"}, timeout=30,
    ) as r:
        assert r.status_code == 200
        return r.read().decode(), r.headers["x-request-id"]


def sse_text(body: str) -> str:
    out = []
    for line in body.splitlines():
        if line.startswith("data: {"):
            for c in json.loads(line[6:]).get("choices", []):
                out.append(c.get("delta", {}).get("content") or "")
    return "".join(out)


def test_ledger_audit_and_usage_record_both_attempts(gw):
    whole = chat_text(gw, "az-bedrock")
    gw.emus["azure_openai"].faults({"stall_stream_after": AFTER})
    body, rid = raw_chat(gw, "az-bedrock", stream_options={"include_usage": True})
    assert sse_text(body) == whole
    usage = [json.loads(l[6:])["usage"] for l in body.splitlines() if l.startswith("data: {") and json.loads(l[6:]).get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] > 0 and usage[0]["prompt_tokens"] > 0
    ledger = gw.rows(
        "SELECT cloud, outcome, output_tokens, usage_estimated FROM usage_ledger WHERE request_id = ? ORDER BY id",
        (rid,), 2,
    )
    assert [(c, o) for c, o, _, _ in ledger] == [("azure-us", "interrupted(idle_timeout)"), ("aws-eu", "ok")]
    # Azure sent no usage before it hung: its output is the gateway's estimate.
    assert ledger[0][2] > 0 and ledger[0][3] == 1
    assert ledger[1][2] > 0 and ledger[1][3] == 0
    audit = gw.rows("SELECT route, cloud FROM audit_log WHERE request_id = ?", (rid,), 1)
    route = json.loads(audit[0][0])
    assert [(d["cloud"], d["outcome"], d["reason"]) for d in route] == [
        ("azure-us", "interrupted", "idle_timeout"),
        ("aws-eu", "resumed", None),
    ]
    assert audit[0][1] == "aws-eu"
    access = [l for l in gw.server.lines + gw.server.err if rid in l and "route=" in l]
    assert access and "azure-us:interrupted(idle_timeout) aws-eu:resumed" in access[-1], access


def test_tool_call_interrupted_inside_its_arguments_is_invisible(gw):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    # Azure streams the call's arguments 8 characters a chunk: cut inside them.
    gw.emus["azure_openai"].faults({"cut_stream_after": 4})
    stream = gw.openai().chat.completions.create(
        model="az-bedrock", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=tools, stream=True
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for c in chunk.choices:
            for t in c.delta.tool_calls or []:
                call = calls.setdefault(t.index, {"id": None, "name": "", "args": ""})
                call["id"] = call["id"] or t.id
                call["name"] += (t.function.name or "") if t.function else ""
                call["args"] += (t.function.arguments or "") if t.function else ""
            finish = c.finish_reason or finish
    assert list(calls) == [0], calls
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"city": "Oslo"}
    assert finish == "tool_calls"


def interrupted_error(body: str) -> dict:
    errors = [json.loads(l[6:])["error"] for l in body.splitlines() if l.startswith("data: {") and "error" in json.loads(l[6:])]
    assert len(errors) == 1, body
    return errors[0]


def metric(gw: ResumeGateway, labels: str) -> float:
    text = httpx.get(gw.base_url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("anycloud_stream_resumes_total{") and all(p in line for p in labels.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_no_cloud_can_continue_without_prefill(gw):
    before = metric(gw, 'from_cloud="azure-us",to_cloud="none",outcome="no_cloud"')
    gw.emus["azure_openai"].faults({"cut_stream_after": AFTER})
    body, _ = raw_chat(gw, "no-prefill")
    assert interrupted_error(body)["code"] == "stream_interrupted"
    assert sse_text(body), "the text before the cut still reached the client"
    assert metric(gw, 'from_cloud="azure-us",to_cloud="none",outcome="no_cloud"') == before + 1


def test_resume_off_for_a_model_ends_the_stream_as_before(gw):
    gw.emus["azure_openai"].faults({"cut_stream_after": AFTER})
    before = gw.emus["bedrock"].requests()
    body, _ = raw_chat(gw, "resume-off")
    assert interrupted_error(body)["code"] == "stream_interrupted"
    assert gw.emus["bedrock"].requests() == before, "nothing was continued"


def test_resume_max_exhausted_ends_with_stream_interrupted(gw):
    before = metric(gw, 'from_cloud="aws-eu",to_cloud="none",outcome="exhausted"')
    resumed = metric(gw, 'from_cloud="azure-us",to_cloud="aws-eu",outcome="resumed"')
    gw.emus["azure_openai"].faults({"cut_stream_after": AFTER})
    gw.emus["bedrock"].faults({"cut_stream_after": 5})
    vertex_before = gw.emus["vertex"].requests()
    body, rid = raw_chat(gw, "chain")
    assert interrupted_error(body)["code"] == "stream_interrupted"
    assert gw.emus["vertex"].requests() == vertex_before, "resume_max = 1: no second continuation"
    assert metric(gw, 'from_cloud="aws-eu",to_cloud="none",outcome="exhausted"') == before + 1
    assert metric(gw, 'from_cloud="azure-us",to_cloud="aws-eu",outcome="resumed"') == resumed + 1
    ledger = gw.rows("SELECT cloud, outcome FROM usage_ledger WHERE request_id = ? ORDER BY id", (rid,), 2)
    assert ledger == [("azure-us", "interrupted(closed)"), ("aws-eu", "interrupted(closed)")]
