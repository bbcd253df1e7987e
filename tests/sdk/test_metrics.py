"""`/metrics` through a real OpenMetrics parser (the Prometheus project's `prometheus_client`).

Its own gateway (admin token, budgets, rate limits, a jurisdiction-fenced tenant) so the
traffic here is known. Checks:
- every metric README's "Metrics" table documents appears after traffic, with exactly the
  documented type and labels, and nothing undocumented is served;
- label values stay within the configured names and fixed sets, and the number of series
  does not grow when hundreds more random model names, tenants and paths arrive.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import REPO_ROOT, Proc, binary_path, free_port, start_emulators, wait_healthy, write_config

ADMIN = "metrics-admin-token-0123456789"
CLOUDS = {"azure-us", "local-openai", "anthropic", "openai", "aws-eu", "gcp-eu", "oci-eu"}
MODELS = {
    "gpt-4o",
    "claude-sonnet",
    "text-embedding-3-small",
    "azure-only",
    "local-only",
    "openai-direct",
    "bedrock-claude",
    "gemini",
    "claude-vertex",
    "llama",
}
TENANTS = {"team", "narrow", "spender", "tight", "eu"}
APIS = {"chat_completions", "messages", "responses", "embeddings"}


def write_metrics_config(path: Path, listen: str, db: Path, emus: dict) -> None:
    """The SDK suite's config, plus an admin token and tenants with budgets and limits."""
    write_config(path, listen, db, emus)
    text = path.read_text().replace("[server]\n", f'[server]\nadmin_token = "{ADMIN}"\n', 1)
    text += """
[[tenants]]
name = "spender"
budget = { usd = 100.0, period = "month" }

[[tenants]]
name = "tight"
rate_limit = { requests_per_minute = 1 }

[[tenants]]
name = "eu"
jurisdictions = ["eu"]
"""
    path.write_text(text)


class Gw:
    def __init__(self, base: str):
        self.base = base
        self.admin = {"authorization": f"Bearer {ADMIN}"}
        self.http = httpx.Client(timeout=20)  # keep-alive: hundreds of requests

    def key(self, tenant: str, **policy) -> str:
        r = self.http.post(f"{self.base}/admin/v1/keys", headers=self.admin, json={"tenant": tenant, **policy}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def tenant(self, name: str) -> None:
        r = self.http.post(f"{self.base}/admin/v1/tenants", headers=self.admin, json={"name": name}, timeout=10)
        assert r.status_code == 201, r.text

    def chat(self, key: str, model: str, stream: bool = False) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        r = self.http.post(f"{self.base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body, timeout=20)
        return r.status_code

    def families(self) -> list:
        assert self.http.get(f"{self.base}/metrics").status_code == 401, "/metrics needs a token"
        r = self.http.get(f"{self.base}/metrics", headers=self.admin)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        return list(text_string_to_metric_families(r.text))


@pytest.fixture(scope="module")
def gw():
    binary = binary_path()
    if not binary.exists():
        pytest.exit(f"anycloud binary not found at {binary}; run scripts/test.sh first", returncode=2)
    workdir = Path(tempfile.mkdtemp(prefix="anycloud-metrics-"))
    procs: list[Proc] = []
    try:
        emus = start_emulators(binary, workdir, procs)
        port = free_port()
        cfg = workdir / "anycloud.toml"
        write_metrics_config(cfg, f"127.0.0.1:{port}", workdir / "gw.db", emus)
        server = Proc("anycloud serve", [str(binary), "serve", "--config", str(cfg)], workdir)
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        yield Gw(base)
    finally:
        for p in reversed(procs):
            p.stop()


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """README's Metrics table: | `name` | type | `label`, … | meaning |."""
    return {name: (kind, labels) for name, kind, labels, _ in metric_rows()}


def redis_only_metrics() -> set[str]:
    """Metrics README says exist only with `store.redis_url`, `[[mcp_servers]]`,
    `[store.content]` or resumed streams (this gateway has none; test_mcp_sdk.py checks the
    MCP series, test_stream_resume.py the resumes)."""
    only = (
        "Only with `store.redis_url`",
        "Only with `[[mcp_servers]]`",
        "Only with `[store.content]`",
        "Only with `routing.resume_streams`",
    )
    return {name for name, _, _, meaning in metric_rows() if meaning.startswith(only)}


def metric_rows() -> list[tuple[str, str, set[str], str]]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    out = []
    for m in re.finditer(r"^\| `(anycloud_[a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\| ([^|]*)", section, re.M):
        labels = set(re.findall(r"`([a-z_]+)`", m.group(3)))
        out.append((m.group(1), m.group(2), labels, m.group(4).strip()))
    assert len(out) >= 15, f"README's Metrics table not found or short: {[r[0] for r in out]}"
    return out


def served(families) -> dict[str, tuple[str, set[str]]]:
    out = {}
    for f in families:
        name = f.name + "_total" if f.type == "counter" else f.name
        labels: set[str] = set()
        for s in f.samples:
            labels |= set(s.labels) - {"le"}
        out[name] = (f.type, labels)
    return out


def series(families) -> set[tuple]:
    return {(s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples}


def known_traffic(gw: Gw) -> None:
    team = gw.key("spender")
    h = {"authorization": f"Bearer {team}"}
    assert gw.chat(team, "gpt-4o") == 200
    assert gw.chat(team, "gpt-4o", stream=True) == 200
    r = httpx.post(f"{gw.base}/v1/embeddings", headers=h, json={"model": "text-embedding-3-small", "input": "x"}, timeout=20)
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{gw.base}/v1/messages",
        headers={"x-api-key": team, "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gw.base}/v1/responses", headers=h, json={"model": "gpt-4o", "input": "hi"}, timeout=20)
    assert r.status_code == 200, r.text
    # Streams of the other two APIs (time to first token for each).
    r = httpx.post(
        f"{gw.base}/v1/messages",
        headers={"x-api-key": team, "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert r.status_code == 200 and "message_stop" in r.text, r.text
    r = httpx.post(f"{gw.base}/v1/responses", headers=h, json={"model": "gpt-4o", "input": "hi", "stream": True}, timeout=20)
    assert r.status_code == 200 and "response.completed" in r.text, r.text
    tight = gw.key("tight")
    # 1 request per minute for the tenant: the second is refused (both, on a second run).
    assert [gw.chat(tight, "gpt-4o") for _ in range(2)][-1] == 429
    poor = gw.key("spender", budget={"usd": 0.000001, "period": "day"})
    assert gw.chat(poor, "gpt-4o") == 429
    assert gw.chat(gw.key("eu"), "gpt-4o") == 403  # every cloud declined: jurisdiction


def random_traffic(gw: Gw, team: str, n: int) -> list[str]:
    """n random model names, n/4 new tenants (admin API) and n random paths."""
    junk = []
    for _ in range(n):
        m = "model-" + secrets.token_hex(6)
        junk.append(m)
        assert gw.chat(team, m) == 404
    for _ in range(n // 4):
        t = "tenant-" + secrets.token_hex(5)
        junk.append(t)
        gw.tenant(t)
        k = gw.key(t)
        assert gw.chat(k, "gpt-4o") == 200
        assert gw.chat(k, "m-" + secrets.token_hex(4)) == 404
    for _ in range(n):
        p = secrets.token_hex(5)
        junk.append(p)
        r = gw.http.get(f"{gw.base}/v1/{p}")
        assert r.status_code == 404
        r = gw.http.get(f"{gw.base}/v1/responses/resp_{p}", headers={"authorization": f"Bearer {team}"})
        assert r.status_code == 404
    return junk


def wait_for_flushes(gw: Gw) -> list:
    """Background writers commit within ~50 ms; wait until each has reported a batch."""
    deadline = time.monotonic() + 10
    while True:
        fams = gw.families()
        counts = {
            s.labels["queue"]
            for f in fams
            if f.name == "anycloud_queue_flush_seconds"
            for s in f.samples
            if s.name.endswith("_count") and s.value > 0
        }
        if {"ledger", "audit", "budget_spend"} <= counts or time.monotonic() > deadline:
            return fams
        time.sleep(0.1)


def test_every_documented_metric_is_served_with_its_labels(gw: Gw):
    known_traffic(gw)
    fams = wait_for_flushes(gw)
    docs, got = documented_metrics(), served(fams)
    missing = set(docs) - set(got) - redis_only_metrics()
    assert set(got) <= set(docs) and not missing, f"served but undocumented: {set(got) - set(docs)}; documented but missing: {missing}"
    only = redis_only_metrics()
    for name, (kind, labels) in docs.items():
        # A conditional family may be registered with no series yet: nothing to compare.
        if name in got and not (name in only and not got[name][1]):
            assert got[name] == (kind, labels), f"{name}: served {got[name]}, README says {(kind, labels)}"
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams for s in f.samples}

    def v(name, **labels):
        return values.get((name, tuple(sorted(labels.items()))), 0)

    ok_apis = {
        s.labels["api"]
        for f in fams
        for s in f.samples
        if s.name == "anycloud_requests_total" and s.labels["status"] == "200" and s.value > 0
    }
    assert ok_apis == APIS, f"every ingress API is counted: {ok_apis}"
    assert v("anycloud_rate_limited_total", scope="tenant", limit="requests") >= 1
    assert v("anycloud_key_budgets", state="exhausted") >= 1
    assert v("anycloud_route_declines_total", cloud="azure-us", reason="jurisdiction") >= 1
    assert v("anycloud_tokens_total", cloud="anthropic", model="claude-sonnet", tenant="spender", kind="output") > 0
    # The budget's spend is the tenant's cost (at the priced deployments).
    spent = 100 - v("anycloud_budget_remaining_usd", tenant="spender", period="month")
    cost = sum(
        s.value
        for f in fams
        for s in f.samples
        if s.name == "anycloud_cost_usd_total" and s.labels["tenant"] == "spender"
    )
    assert 0 < spent < 1
    assert cost == pytest.approx(spent)
    assert v("anycloud_budget_limit_usd", tenant="spender", period="month") == 100
    ttft = [s for f in fams if f.name == "anycloud_time_to_first_token_seconds" for s in f.samples if s.name.endswith("_count")]
    assert {s.labels["api"] for s in ttft if s.value >= 1} == {"chat_completions", "messages", "responses"}


def test_label_cardinality_stays_bounded_under_random_names(gw: Gw):
    team = gw.key("team")
    known_traffic(gw)
    random_traffic(gw, team, 50)
    wait_for_flushes(gw)
    before = series(gw.families())
    junk = random_traffic(gw, team, 300)
    after_fams = gw.families()
    after = series(after_fams)
    assert after == before, f"new series appeared: {sorted(after - before)[:10]}"
    allowed = {
        "model": MODELS | {"unknown", "none"},
        "tenant": TENANTS | {"other"},
        "cloud": CLOUDS | {"none", "other"},
        "api": APIS,
    }
    text = "\n".join(f"{n} {dict(l)}" for n, l in after)
    for n, labels in after:
        for k, val in labels:
            if k in allowed:
                assert val in allowed[k], f"{n}: {k}={val!r} is not a configured name"
    leaked = [j for j in junk if j in text]
    assert not leaked, f"free text in label values: {leaked[:5]}"
    assert len(after) < 1500, f"{len(after)} series"
