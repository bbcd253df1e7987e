"""Automatic prompt caching, cache affinity and the clouds that cache by themselves
(README "Prompt caching"), through the official `openai` and `anthropic` SDKs.

One gateway of its own (it drains clouds) in front of the emulated clouds:

- an agent of ten turns through `/v1/responses` on a Claude deployment with
  `prompt_cache = "auto"` is billed in the ledger exactly as the emulated cloud reported
  (writes on turn one, reads after), and costs less than the same run without caching by
  what the prices say;
- a streamed `/v1/messages` call carries the cache counts in `message_start` and
  `message_delta`, and the ledger holds them;
- cache affinity keeps a conversation on the cloud that holds its cache, and lets it move
  when that cloud is drained;
- OpenAI, Azure OpenAI and Gemini cache long prompts by themselves, and the gateway bills
  the cached tokens they report at the cached price.
"""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import ALL_EMULATORS, METRICS_TOKEN, Proc, binary_path, clouds_toml, free_port, start_emulators, wait_healthy

ADMIN = "sdk-admin-token-0123456789abcdef"
CLAUDE_PRICE = (
    "price = { input_per_mtok = 3.00, output_per_mtok = 15.00, cached_input_per_mtok = 0.30,"
    " cache_write_per_mtok = 3.75 }"
)
# The same prices in nano-dollars per token.
INPUT, OUTPUT, READ, WRITE = 3_000, 15_000, 300, 3_750
# Cached prices of the clouds that cache by themselves, nano-dollars per token:
# (input, output, cached input).
IMPLICIT = {
    "gpt-cached": ("azure_openai", (2_500, 10_000, 1_250)),
    "openai-cached": ("openai_compatible", (2_500, 10_000, 1_250)),
    "gemini-cached": ("vertex", (300, 2_500, 75)),
}


def write_config(path: Path, listen: str, db: Path, emus: dict) -> None:
    bedrock = '"anthropic.claude-3-5-sonnet-20240620-v1:0"'
    path.write_text(
        f"""
[server]
listen = "{listen}"
metrics_token = "{METRICS_TOKEN}"
admin_token = "{ADMIN}"

[store]
url = "sqlite://{db}"

[routing.breaker]
consecutive_failures = 1000000
error_rate = 1.0
window = 1000
min_requests = 1000
cool_down_ms = 1

{clouds_toml(emus)}

[[models]]
name = "claude-auto"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
prompt_cache = "auto"
{CLAUDE_PRICE}

[[models]]
name = "claude-plain"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
{CLAUDE_PRICE}

# Claude on three clouds, tried in this order unless cache affinity says otherwise.
[[models]]
name = "claude-anywhere"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
prompt_cache = "auto"
{CLAUDE_PRICE}
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
prompt_cache = "auto"
{CLAUDE_PRICE}
[[models.deployments]]
cloud = "aws-eu"
target = {bedrock}
prompt_cache = "auto"
{CLAUDE_PRICE}

[[models]]
name = "gpt-cached"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
price = {{ input_per_mtok = 2.50, output_per_mtok = 10.00, cached_input_per_mtok = 1.25 }}

[[models]]
name = "openai-cached"
[[models.deployments]]
cloud = "openai"
target = "gpt-4o-mini"
price = {{ input_per_mtok = 2.50, output_per_mtok = 10.00, cached_input_per_mtok = 1.25 }}

[[models]]
name = "gemini-cached"
[[models.deployments]]
cloud = "gcp-eu"
target = "gemini-2.0-flash"
price = {{ input_per_mtok = 0.30, output_per_mtok = 2.50, cached_input_per_mtok = 0.075 }}

[[tenants]]
name = "team"
"""
    )


class CacheGateway:
    def __init__(self, base_url: str, key: str, emus: dict, db: Path):
        self.base_url = base_url
        self.key = key
        self.emus = emus
        self.db = db

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key=self.key, max_retries=0)

    def admin(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, self.base_url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)

    def drain(self, cloud: str, drained: bool = True) -> None:
        r = self.admin("POST", f"/admin/v1/clouds/{cloud}/{'drain' if drained else 'restore'}")
        assert r.status_code == 200, r.text

    def reported(self, kind: str) -> list[dict]:
        """The usage the emulated cloud reported for each answer since its last reset."""
        r = httpx.get(self.emus[kind].control_url + "/usage", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["usage"]

    def ledger(self, request_id: str) -> dict:
        """The ledger row of `request_id`, once the batched writer has committed it."""
        deadline = time.time() + 10
        while True:
            con = sqlite3.connect(self.db)
            con.row_factory = sqlite3.Row
            try:
                row = con.execute(
                    "SELECT cloud, input_tokens, output_tokens, cached_tokens, cache_write_tokens,"
                    " cache_write_1h_tokens, cost_nanos, cache_saved_nanos FROM usage_ledger"
                    " WHERE request_id = ? AND outcome = 'ok'",
                    (request_id,),
                ).fetchone()
            finally:
                con.close()
            if row is not None:
                return dict(row)
            assert time.time() < deadline, f"no ledger row for {request_id}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gw():
    binary = binary_path()
    if not binary.exists():
        pytest.exit(f"anycloud binary not found at {binary}", returncode=2)
    workdir = Path(tempfile.mkdtemp(prefix="anycloud-cache-"))
    procs: list[Proc] = []
    try:
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
        yield CacheGateway(base, key, emus, db)
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(autouse=True)
def _clean(gw):
    for e in gw.emus.values():
        e.reset()
    yield
    for e in gw.emus.values():
        e.reset()


def instructions(tag: str) -> str:
    """A system prompt of some 2 000 tokens, new to every cache (`tag` differs per run)."""
    return f"[{tag}] " + "You are a meticulous agent who follows every rule. " * 160


def agent(gw: CacheGateway, model: str, tag: str, turns: int = 10) -> list[tuple[str, object]]:
    """`turns` turns of one conversation chained by previous_response_id: (request id,
    Responses usage) per turn."""
    client = gw.openai()
    prev = None
    out = []
    for i in range(turns):
        raw = client.responses.with_raw_response.create(
            model=model,
            instructions=instructions(tag),
            input=f"Step {i}: " + "please look into the ledger and report back. " * 10,
            previous_response_id=prev,
            max_output_tokens=64,
        )
        r = raw.parse()
        assert r.status == "completed", r
        prev = r.id
        out.append((raw.headers["x-request-id"], r.usage))
    return out


def cost(u: dict) -> int:
    """What Anthropic's usage costs at the deployments' prices, in nano-dollars."""
    return (
        u["input_tokens"] * INPUT
        + u["cache_read_input_tokens"] * READ
        + u["cache_creation_input_tokens"] * WRITE
        + u["output_tokens"] * OUTPUT
    )


def test_a_ten_turn_agent_is_billed_as_the_cloud_reported_and_saves_what_the_prices_say(gw):
    tag = uuid.uuid4().hex
    turns = agent(gw, "claude-auto", "cache" + tag)
    reported = gw.reported("anthropic")
    assert len(reported) == 10
    # Turn one writes the system prompt; every later turn reads what the one before wrote.
    assert reported[0]["cache_creation_input_tokens"] > 1_024, reported[0]
    assert reported[0]["cache_read_input_tokens"] == 0
    for before, now in zip(reported, reported[1:]):
        assert now["cache_read_input_tokens"] > before["cache_read_input_tokens"], (before, now)
        assert now["cache_creation_input_tokens"] > 0, now
    saved = 0
    for (request_id, usage), u in zip(turns, reported):
        total = u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        # The client sees the whole prompt and what of it was read from the cache.
        assert usage.input_tokens == total
        assert usage.input_tokens_details.cached_tokens == u["cache_read_input_tokens"]
        row = gw.ledger(request_id)
        assert row["cloud"] == "anthropic"
        assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["output_tokens"]) == (
            total,
            u["cache_read_input_tokens"],
            u["cache_creation_input_tokens"],
            u["output_tokens"],
        )
        assert row["cache_write_1h_tokens"] == 0
        assert row["cost_nanos"] == cost(u), (row, u)
        # What the same tokens cost at the input price, less what they cost.
        turn_saved = u["cache_read_input_tokens"] * (INPUT - READ) - u["cache_creation_input_tokens"] * (WRITE - INPUT)
        assert row["cache_saved_nanos"] == turn_saved
        saved += turn_saved
    auto_cost = sum(gw.ledger(rid)["cost_nanos"] for rid, _ in turns)

    # The same agent on the same deployment without `prompt_cache = "auto"`: nothing is
    # marked, so nothing is cached, and every token is billed at the input price.
    for e in gw.emus.values():
        e.reset()
    plain = agent(gw, "claude-plain", "plain" + tag)
    plain_reported = gw.reported("anthropic")
    assert all(u["cache_read_input_tokens"] == 0 and u["cache_creation_input_tokens"] == 0 for u in plain_reported)
    # The prompts are the same size turn by turn (the tags are), so is every answer.
    for a, b in zip(reported, plain_reported):
        assert b["input_tokens"] == a["input_tokens"] + a["cache_read_input_tokens"] + a["cache_creation_input_tokens"]
        assert b["output_tokens"] == a["output_tokens"]
    plain_cost = sum(gw.ledger(rid)["cost_nanos"] for rid, _ in plain)
    assert plain_cost == sum(cost(u) for u in plain_reported)
    assert saved > 0
    assert plain_cost - auto_cost == saved, (plain_cost, auto_cost, saved)


def stream_events(gw: CacheGateway, system: str, question: str):
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-auto",
        max_tokens=64,
        system=system,
        messages=[{"role": "user", "content": question}],
        stream=True,
    )
    events = [e.to_dict() for e in raw.parse()]
    return raw.headers["x-request-id"], events


def test_a_streamed_message_carries_the_cache_counts_in_start_and_delta(gw):
    system = instructions(uuid.uuid4().hex)
    calls = [stream_events(gw, system, q) for q in ("What is the first rule?", "And the second?")]
    reported = gw.reported("anthropic")
    assert [u["cache_read_input_tokens"] > 0 for u in reported] == [False, True]
    for (request_id, events), u in zip(calls, reported):
        start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
        delta = next(e for e in events if e["type"] == "message_delta")["usage"]
        for usage in (start, delta):
            assert usage["input_tokens"] == u["input_tokens"], (usage, u)
            assert usage["cache_creation_input_tokens"] == u["cache_creation_input_tokens"]
            assert usage["cache_read_input_tokens"] == u["cache_read_input_tokens"]
        assert delta["output_tokens"] == u["output_tokens"]
        row = gw.ledger(request_id)
        assert row["cached_tokens"] == u["cache_read_input_tokens"]
        assert row["cache_write_tokens"] == u["cache_creation_input_tokens"]
        assert row["cost_nanos"] == cost(u)
    assert reported[0]["cache_creation_input_tokens"] == reported[1]["cache_read_input_tokens"] > 1_024


def turn(gw: CacheGateway, tag: str, i: int, prev: str | None):
    raw = gw.openai().responses.with_raw_response.create(
        model="claude-anywhere",
        instructions=instructions(tag),
        input=f"Turn {i}: what next?",
        previous_response_id=prev,
        max_output_tokens=64,
    )
    return raw.headers, raw.parse()


def test_cache_affinity_keeps_a_conversation_on_its_cloud_until_it_is_drained(gw):
    tag = uuid.uuid4().hex
    gw.drain("anthropic")
    try:
        h1, r1 = turn(gw, tag, 1, None)
    finally:
        gw.drain("anthropic", drained=False)
    assert h1["x-anycloud-cloud"] == "gcp-eu", h1["x-anycloud-route"]
    assert r1.usage.input_tokens_details.cached_tokens == 0

    # Anthropic is first in line again, but the cache is on Vertex: the turn stays there
    # and reads it.
    h2, r2 = turn(gw, tag, 2, r1.id)
    assert h2["x-anycloud-cloud"] == "gcp-eu"
    assert h2["x-anycloud-route"] == "gcp-eu:ok(cache_affinity)"
    assert r2.usage.input_tokens_details.cached_tokens > 1_024
    # A new conversation has no affinity: config order.
    h_new, _ = turn(gw, uuid.uuid4().hex, 1, None)
    assert h_new["x-anycloud-route"] == "anthropic:ok"

    # Vertex drained: affinity yields, the conversation moves (and writes anew there).
    gw.drain("gcp-eu")
    try:
        h3, r3 = turn(gw, tag, 3, r2.id)
        assert h3["x-anycloud-cloud"] == "anthropic"
        assert h3["x-anycloud-route"] == "gcp-eu:declined(drained) anthropic:ok"
        assert r3.usage.input_tokens_details.cached_tokens == 0
    finally:
        gw.drain("gcp-eu", drained=False)
    # …and then stays on Anthropic, which now holds its cache.
    h4, r4 = turn(gw, tag, 4, r3.id)
    assert h4["x-anycloud-cloud"] == "anthropic"
    assert r4.usage.input_tokens_details.cached_tokens > 1_024


@pytest.mark.parametrize("model", sorted(IMPLICIT))
def test_clouds_that_cache_by_themselves_are_billed_at_the_cached_price(gw, model):
    kind, (price_in, price_out, price_cached) = IMPLICIT[model]
    # Some 1 500 tokens, new to the cache.
    prompt = f"[{uuid.uuid4().hex}] " + "Summarise the quarterly ledger line by line. " * 130
    client = gw.openai()
    calls = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=32
        )
        calls.append((raw.headers["x-request-id"], raw.parse().usage))
    (_, first), (_, second) = calls
    assert first.prompt_tokens > 1_024
    assert (first.prompt_tokens_details.cached_tokens or 0) == 0
    cached = second.prompt_tokens_details.cached_tokens
    if kind == "vertex":
        # Gemini reads the whole repeated prompt (`cachedContentTokenCount`).
        assert cached == second.prompt_tokens
    else:
        # OpenAI and Azure: from 1024 tokens, in 128-token increments.
        assert cached == 1_024 + (second.prompt_tokens - 1_024) // 128 * 128
    for request_id, usage in calls:
        hit = usage.prompt_tokens_details.cached_tokens or 0
        row = gw.ledger(request_id)
        assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (usage.prompt_tokens, hit, 0)
        assert row["cost_nanos"] == (
            (usage.prompt_tokens - hit) * price_in + hit * price_cached + usage.completion_tokens * price_out
        )
