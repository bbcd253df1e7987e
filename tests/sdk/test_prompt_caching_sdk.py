"""Prompt caching with the official `anthropic` SDK (README "Prompt caching").

`cache_control` sent to `/v1/messages` must reach each Claude cloud in its own dialect —
Anthropic and Claude on Vertex as `cache_control`, Bedrock as a Converse `cachePoint` —
which the emulators prove by caching only what is marked in their dialect: a write on the
first call, a read of exactly the same prefix on the next. The ledger must bill each call
exactly as the cloud reported it, to the nano-dollar, and the report must show what caching
saved.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import anthropic
import pytest

CLAUDES = [("claude-sonnet", "anthropic"), ("claude-vertex", "gcp-eu"), ("bedrock-claude", "aws-eu")]
# The deployments' price in nano-dollars per token (conftest: $3 input, $15 output,
# $0.30 cache reads, $3.75 five-minute writes per million tokens).
INPUT, OUTPUT, READ, WRITE = 3_000, 15_000, 300, 3_750


def client(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.keys["team"], max_retries=0)


def ledger_row(gateway, request_id: str) -> dict:
    """The ledger row of `request_id`, once the batched writer has committed it."""
    deadline = time.time() + 10
    while True:
        con = sqlite3.connect(gateway.workdir / "anycloud.db")
        con.row_factory = sqlite3.Row
        try:
            row = con.execute(
                "SELECT input_tokens, output_tokens, cached_tokens, cache_write_tokens, cost_nanos,"
                " cache_saved_nanos FROM usage_ledger WHERE request_id = ? AND outcome = 'ok'",
                (request_id,),
            ).fetchone()
        finally:
            con.close()
        if row is not None:
            return dict(row)
        assert time.time() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.05)


def ask(gateway, model: str, system: str, question: str):
    raw = client(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=64,
        system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": question}],
    )
    return raw.headers, raw.parse()


@pytest.mark.parametrize("model,cloud", CLAUDES)
def test_cache_control_reaches_each_cloud_and_is_billed_as_reported(gateway, model, cloud):
    # A system prompt of some 2 000 tokens, new to every cache (a fresh id each run).
    system = f"[{uuid.uuid4()}] " + "You are a careful assistant who follows the rules. " * 160
    headers, first = ask(gateway, model, system, "What is the first rule?")
    assert headers["x-anycloud-cloud"] == cloud
    written = first.usage.cache_creation_input_tokens
    assert written and written > 1_024, first.usage
    assert first.usage.cache_read_input_tokens == 0

    headers2, second = ask(gateway, model, system, "And the second?")
    assert second.usage.cache_read_input_tokens == written, second.usage
    assert second.usage.cache_creation_input_tokens == 0

    for h, msg in ((headers, first), (headers2, second)):
        u = msg.usage
        row = ledger_row(gateway, h["x-request-id"])
        # The ledger holds the cloud's counts: input includes the reads and writes.
        assert row["cached_tokens"] == u.cache_read_input_tokens
        assert row["cache_write_tokens"] == u.cache_creation_input_tokens
        assert row["input_tokens"] == u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
        assert row["output_tokens"] == u.output_tokens
        # Billed exactly, every kind at its price.
        expected = (
            u.input_tokens * INPUT
            + u.cache_read_input_tokens * READ
            + u.cache_creation_input_tokens * WRITE
            + u.output_tokens * OUTPUT
        )
        assert row["cost_nanos"] == expected
        uncached = (u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens) * INPUT + u.output_tokens * OUTPUT
        assert row["cache_saved_nanos"] == uncached - expected

    # Together the two calls cost less than uncached by exactly the saving: the read's
    # discount less the write's premium.
    assert written * (INPUT - READ) - written * (WRITE - INPUT) > 0

    report = gateway.cli(
        "report", "--config", str(gateway.config_path), "--from", "2000-01-01", "--to", "2100-01-01",
        "--group-by", "model", "--format", "json",
    )
    doc = json.loads(report.stdout)
    row = next(m for m in doc["models"] if m["model"] == model)
    assert row["saved_by_caching_usd"] > 0, row
    assert row["cache_write_tokens"] >= written and row["cached_tokens"] >= written
    assert 0 < row["cache_hit_ratio"] <= 1


def test_a_misplaced_breakpoint_is_the_clients_error_in_anthropics_shape(gateway):
    with pytest.raises(anthropic.BadRequestError) as e:
        client(gateway).messages.create(
            model="claude-sonnet",
            max_tokens=16,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "10m"}}]}],
        )
    assert "'5m' or '1h'" in str(e.value)
