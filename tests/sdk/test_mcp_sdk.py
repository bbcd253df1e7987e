"""The MCP gateway (`/mcp`) end to end, with the official `mcp` Python SDK as the client.

Behind the gateway: the MCP emulator over Streamable HTTP (`anycloud emulate --cloud mcp`),
the same emulator as a stdio child process (`anycloud emulate --mcp-stdio`) and a server
written with the official SDK's `MCPServer` (formerly FastMCP) over stdio. Tenants:

- `agents`: every emulator tool, the Python server's tools but `delete_everything`, and only
  `echo` of the stdio emulator;
- `eu-agents`: jurisdictions `["eu"]` (the stdio emulator is in `us`), `emu__fail` denied;
- `metered`: two tool calls per minute;
- `no-mcp`: no MCP policy at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import Proc, STARTUP_TIMEOUT_S, binary_path, free_port, wait_healthy

ADMIN = "admin-token-for-mcp-tests"
HERE = Path(__file__).resolve().parent


def emulator_url(lines: list[str]) -> str | None:
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "mcp":
            return parts[1]
    return None


CONFIG = """
[server]
listen = "127.0.0.1:{port}"
admin_token = "{admin}"

[store]
url = "sqlite://{db}"

[capture]
key = "{capture_key}"

[[mcp_servers]]
name = "emu"
url = "{emu}"
jurisdiction = "eu"
call_timeout_ms = 5000

[[mcp_servers]]
name = "py"
command = "{python}"
args = ["{upstream}"]
jurisdiction = "eu"

[[mcp_servers]]
name = "emustdio"
command = "{binary}"
args = ["emulate", "--mcp-stdio"]
jurisdiction = "us"

[[tenants]]
name = "agents"
capture = true
mcp = {{ tools = ["emu__*", "py__*", "emustdio__echo"], deny = ["py__delete_everything"] }}

[[tenants]]
name = "eu-agents"
jurisdictions = ["eu"]
mcp = {{ deny = ["emu__fail"] }}

[[tenants]]
name = "metered"
mcp = {{ servers = ["emu"], calls_per_minute = 2 }}

[[tenants]]
name = "no-mcp"
"""


class McpGateway:
    def __init__(self, base_url: str, keys: dict[str, str], emu: str, workdir: Path, config: Path, binary: Path, server_pid: int):
        self.server_pid = server_pid
        self.base_url = base_url
        self.keys = keys
        self.emu = emu
        self.workdir = workdir
        self.config = config
        self.binary = binary

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    def client(self, tenant: str, **kw) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.keys[tenant]}"}, timeout=30)
        return Client(streamable_http_client(self.mcp_url, http_client=http), **kw)

    def emu_calls(self, tool: str) -> int:
        stats = httpx.get(self.emu.removesuffix("/mcp") + "/_emulator/stats", timeout=5).json()
        return int(stats["calls"].get(tool, 0))

    def emu_stats(self) -> dict:
        return httpx.get(self.emu.removesuffix("/mcp") + "/_emulator/stats", timeout=5).json()

    def admin(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, self.base_url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


@pytest.fixture(scope="module")
def gw():
    binary = binary_path()
    if not binary.exists():
        pytest.exit(f"anycloud binary not found at {binary}", returncode=2)
    workdir = Path(tempfile.mkdtemp(prefix="anycloud-mcp-"))
    procs: list[Proc] = []
    try:
        emu = Proc("anycloud emulate mcp", [str(binary), "emulate", "--cloud", "mcp", "--port", "0"], workdir)
        procs.append(emu)
        url = emulator_url(emu.wait_for_lines(lambda ls: emulator_url(ls) is not None, STARTUP_TIMEOUT_S))
        assert url and url.endswith("/mcp"), url
        port = free_port()
        config = workdir / "anycloud.toml"
        config.write_text(
            CONFIG.format(
                port=port,
                admin=ADMIN,
                db=workdir / "anycloud.db",
                capture_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                emu=url,
                python=sys.executable,
                upstream=HERE / "mcp_upstream.py",
                binary=binary,
            )
        )
        check = Proc("config check", [str(binary), "config", "check", str(config)], workdir)
        assert check.p.wait(timeout=30) == 0, check.output()
        keys = {}
        for tenant in ("agents", "eu-agents", "metered", "no-mcp"):
            keys[tenant] = _create_key(binary, config, workdir, tenant)
        server = Proc("anycloud serve", [str(binary), "serve", "--config", str(config)], workdir)
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        yield McpGateway(base, keys, url, workdir, config, binary, server.p.pid)
    finally:
        for p in reversed(procs):
            p.stop()


def _create_key(binary: Path, config: Path, workdir: Path, tenant: str) -> str:
    import subprocess

    cp = subprocess.run(
        [str(binary), "keys", "create", "--config", str(config), "--tenant", tenant],
        cwd=workdir, capture_output=True, text=True, timeout=60,
    )
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip().splitlines()[-1].strip()


def run(coro):
    return asyncio.run(coro)


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def tool_names(gw: McpGateway, tenant: str) -> dict[str, object]:
    async with gw.client(tenant) as c:
        listed = await c.list_tools()
        return {t.name: t for t in listed.tools}


def test_tools_list_is_the_union_the_tenant_may_use_namespaced_with_schemas(gw):
    tools = run(tool_names(gw, "agents"))
    for name in ("emu__echo", "emu__add", "emu__slow", "emu__fail", "py__greet", "py__divide", "emustdio__echo"):
        assert name in tools, sorted(tools)
    assert "py__delete_everything" not in tools
    assert "emustdio__add" not in tools
    add = tools["emu__add"]
    assert add.input_schema["properties"].keys() >= {"a", "b"}
    assert add.input_schema["required"] == ["a", "b"]
    greet = tools["py__greet"]
    assert greet.input_schema["properties"]["name"]["type"] == "string"


def test_calls_reach_http_and_stdio_servers_and_results_pass_through(gw):
    async def go():
        async with gw.client("agents") as c:
            added = await c.call_tool("emu__add", {"a": 2, "b": 3})
            greeted = await c.call_tool("py__greet", {"name": "Ada"})
            echoed = await c.call_tool("emustdio__echo", {"text": "over stdio"})
            return added, greeted, echoed

    added, greeted, echoed = run(go())
    assert not added.is_error
    assert added.structured_content == {"sum": 5.0}
    assert text_of(added) == "5"
    assert text_of(greeted) == "Hello, Ada!"
    assert text_of(echoed) == "over stdio"


def test_tool_errors_and_protocol_errors_come_back_in_mcp_shape(gw):
    async def go():
        async with gw.client("agents") as c:
            failed = await c.call_tool("emu__fail", {})
            divided = await c.call_tool("py__divide", {"a": 1, "b": 0})
            with pytest.raises(MCPError) as unknown:
                await c.call_tool("emu__no_such_tool", {})
            with pytest.raises(MCPError) as bad_args:
                await c.call_tool("emu__echo", {})
            return failed, divided, unknown.value, bad_args.value

    failed, divided, unknown, bad_args = run(go())
    assert failed.is_error and "always fails" in text_of(failed)
    assert divided.is_error and "division by zero" in text_of(divided)
    assert unknown.error.code == -32602 and "emu__no_such_tool" in unknown.error.message
    assert bad_args.error.code == -32602 and "text" in bad_args.error.message


def test_a_denied_tool_is_refused_without_reaching_the_server(gw):
    before = gw.emu_calls("fail")

    async def go():
        errors = {}
        async with gw.client("eu-agents") as c:
            listed = {t.name for t in (await c.list_tools()).tools}
            for name in ("emu__fail", "emustdio__echo"):
                with pytest.raises(MCPError) as e:
                    await c.call_tool(name, {"text": "x"})
                errors[name] = e.value.error
        async with gw.client("agents") as c:
            with pytest.raises(MCPError) as e:
                await c.call_tool("py__delete_everything", {})
            errors["py__delete_everything"] = e.value.error
        async with gw.client("no-mcp") as c:
            assert (await c.list_tools()).tools == []
            with pytest.raises(MCPError) as e:
                await c.call_tool("emu__echo", {"text": "x"})
            errors["no-mcp"] = e.value.error
        return listed, errors

    listed, errors = run(go())
    assert "emu__echo" in listed and "emu__fail" not in listed
    assert not any(n.startswith("emustdio__") for n in listed), listed
    assert errors["emu__fail"].code == -32010 and "deny" in errors["emu__fail"].message
    assert errors["emustdio__echo"].code == -32010 and "jurisdiction" in errors["emustdio__echo"].message
    assert "deny" in errors["py__delete_everything"].message
    assert "no MCP policy" in errors["no-mcp"].message
    assert gw.emu_calls("fail") == before


def test_a_drained_server_disappears_and_is_refused_until_restored(gw):
    r = gw.admin("POST", "/admin/v1/mcp/servers/emu/drain")
    assert r.status_code == 200 and r.json()["drained"] is True, r.text
    try:
        before = gw.emu_calls("echo")

        async def drained():
            async with gw.client("agents") as c:
                names = {t.name for t in (await c.list_tools()).tools}
                with pytest.raises(MCPError) as e:
                    await c.call_tool("emu__echo", {"text": "x"})
                ok = await c.call_tool("py__greet", {"name": "still here"})
                return names, e.value.error, ok

        names, err, ok = run(drained())
        assert not any(n.startswith("emu__") for n in names), names
        assert "py__greet" in names
        assert err.code == -32012 and "drained" in err.message
        assert text_of(ok) == "Hello, still here!"
        assert gw.emu_calls("echo") == before
        servers = {s["name"]: s for s in gw.admin("GET", "/admin/v1/mcp/servers").json()["data"]}
        assert servers["emu"]["drained"] is True and servers["py"]["drained"] is False
    finally:
        r = gw.admin("POST", "/admin/v1/mcp/servers/emu/restore")
        assert r.status_code == 200 and r.json()["drained"] is False, r.text

    async def restored():
        async with gw.client("agents") as c:
            return await c.call_tool("emu__echo", {"text": "back"})

    assert text_of(run(restored())) == "back"
    assert gw.admin("POST", "/admin/v1/mcp/servers/nope/drain").status_code == 404
    assert httpx.post(gw.base_url + "/admin/v1/mcp/servers/emu/drain", timeout=5).status_code == 401


def test_tool_calls_per_minute_are_limited(gw):
    async def go():
        async with gw.client("metered") as c:
            await c.call_tool("emu__echo", {"text": "1"})
            await c.call_tool("emu__echo", {"text": "2"})
            with pytest.raises(MCPError) as e:
                await c.call_tool("emu__echo", {"text": "3"})
            return e.value.error

    err = run(go())
    assert err.code == -32011 and "2 MCP tool calls per minute" in err.message


def test_progress_is_passed_through_to_the_client(gw):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def go():
        async with gw.client("agents") as c:
            return await c.call_tool("emu__slow", {"ms": 300, "steps": 3}, progress_callback=on_progress)

    result = run(go())
    assert text_of(result) == "waited 300 ms"
    assert [p for p, _, _ in seen] == [0.0, 1.0, 2.0], seen
    assert seen[-1][1] == 3.0 and seen[-1][2] == "step 3 of 3"


def test_a_cancelled_call_is_cancelled_upstream(gw):
    before = gw.emu_stats()["cancelled"]

    async def go():
        async with gw.client("agents") as c:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await c.call_tool("emu__slow", {"ms": 10000, "steps": 100})
            # The session is still usable after the cancellation.
            return await c.call_tool("emu__echo", {"text": "after"})

    assert text_of(run(go())) == "after"
    import time

    until = time.monotonic() + 5
    while gw.emu_stats()["cancelled"] == before and time.monotonic() < until:
        time.sleep(0.05)
    assert gw.emu_stats()["cancelled"] == before + 1


def test_a_bad_key_is_refused(gw):
    async def go():
        http = httpx2.AsyncClient(headers={"Authorization": "Bearer sk-ac-nope"}, timeout=10)
        async with Client(streamable_http_client(gw.mcp_url, http_client=http)) as c:
            await c.list_tools()

    with pytest.raises(Exception):
        run(go())
    r = httpx.post(gw.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=5)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == -32001


def test_legacy_handshake_gets_a_session_id(gw):
    headers = {
        "Authorization": f"Bearer {gw.keys['agents']}",
        "Accept": "application/json, text/event-stream",
    }
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    r = httpx.post(gw.mcp_url, json=init, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers.get("mcp-session-id"), dict(r.headers)
    assert "2025-11-25" in r.text


def _audit(gw: McpGateway) -> list[dict]:
    r = gw.admin("GET", "/admin/v1/audit?action=mcp.tools_call&limit=500")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_every_call_is_in_the_audit_chain_with_an_argument_hash(gw):
    async def go():
        async with gw.client("agents") as c:
            await c.call_tool("emu__echo", {"text": "audited call"})
            with pytest.raises(MCPError):
                await c.call_tool("py__delete_everything", {})

    run(go())
    import time

    want = hashlib.sha256(json.dumps({"text": "audited call"}, separators=(",", ":"), sort_keys=True).encode()).hexdigest()
    until = time.monotonic() + 5
    entries: list[dict] = []
    while time.monotonic() < until:
        entries = _audit(gw)
        if any(e["detail"]["arguments_sha256"] == want for e in entries) and any(
            e["detail"]["tool"] == "py__delete_everything" for e in entries
        ):
            break
        time.sleep(0.05)
    served = next(e for e in entries if e["detail"]["arguments_sha256"] == want)
    assert served["action"] == "mcp.tools_call"
    assert served["tenant"] == "agents"
    assert served["actor"].startswith("key:")
    assert served["detail"]["server"] == "emu" and served["detail"]["tool"] == "emu__echo"
    assert served["detail"]["outcome"] == "ok"
    assert isinstance(served["latency_ms"], int)
    assert "audited call" not in json.dumps(served)
    denied = next(e for e in entries if e["detail"]["tool"] == "py__delete_everything")
    assert denied["detail"]["outcome"] == "tool_denied"
    assert all(e["action"] == "mcp.tools_call" for e in entries)

    verify = gw.admin("GET", "/admin/v1/audit/verify")
    assert verify.status_code == 200 and verify.json()["status"] == "intact", verify.text

    # The tenant captures payloads: arguments and result are sealed, and open with the admin token.
    cap = gw.admin("GET", f"/admin/v1/captures/{served['request_id']}")
    assert cap.status_code == 200, cap.text
    body = json.dumps(cap.json())
    assert "audited call" in body


def test_metrics_count_calls_by_server_tool_and_outcome(gw):
    async def go():
        async with gw.client("agents") as c:
            await c.call_tool("emu__add", {"a": 1, "b": 1})
            await c.call_tool("emu__fail", {})

    run(go())
    text = gw.admin("GET", "/metrics").text
    assert 'anycloud_mcp_calls_total{server="emu",tool="emu__add",outcome="ok"}' in text
    assert 'anycloud_mcp_calls_total{server="emu",tool="emu__fail",outcome="tool_error"}' in text
    assert 'anycloud_mcp_call_duration_seconds_count{server="emu",tool="emu__add"}' in text


def test_the_dashboard_shows_tool_calls_and_drains_a_server(gw):
    async def go():
        async with gw.client("agents") as c:
            await c.call_tool("emu__lookup_order", {"order_id": "A-1"})

    run(go())
    ui = httpx.Client(base_url=gw.base_url, timeout=10, follow_redirects=False)
    r = ui.post("/ui/login", data={"token": ADMIN})
    assert r.status_code in (302, 303), r.text
    panel = ui.get("/ui/panel/mcp")
    assert panel.status_code == 200, panel.text
    assert 'data-mcp-server="emu"' in panel.text and 'data-mcp-server="py"' in panel.text
    assert "emu__lookup_order" in panel.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', panel.text)
    assert csrf, panel.text
    try:
        r = ui.post("/ui/mcp/py/drain", data={"csrf": csrf.group(1)})
        assert r.status_code in (302, 303), r.text
        servers = {s["name"]: s for s in gw.admin("GET", "/admin/v1/mcp/servers").json()["data"]}
        assert servers["py"]["drained"] is True
        assert ui.post("/ui/mcp/py/restore", data={"csrf": "forged"}).status_code == 403
    finally:
        gw.admin("POST", "/admin/v1/mcp/servers/py/restore")
    drains = gw.admin("GET", "/admin/v1/audit?action=admin.mcp.drain").json()["data"]
    assert any(e["detail"]["after"]["mcp_server"] == "py" for e in drains)


def test_a_key_policy_from_the_admin_api_narrows_the_tenant_policy(gw):
    r = gw.admin("GET", "/admin/v1/tenants/agents")
    assert r.status_code == 200 and r.json()["mcp"]["deny"] == ["py__delete_everything"], r.text
    bad = httpx.post(
        gw.base_url + "/admin/v1/keys",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"tenant": "agents", "mcp": {"servers": ["nowhere"]}},
        timeout=10,
    )
    assert bad.status_code == 400 and "unknown MCP server `nowhere`" in bad.text, bad.text
    r = httpx.post(
        gw.base_url + "/admin/v1/keys",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"tenant": "agents", "name": "echo-only", "mcp": {"tools": ["emu__echo"]}},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    assert r.json()["mcp"] == {"servers": None, "tools": ["emu__echo"]}
    gw.keys["echo-only"] = r.json()["key"]

    async def go():
        async with gw.client("echo-only") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            ok = await c.call_tool("emu__echo", {"text": "narrow"})
            with pytest.raises(MCPError) as e:
                await c.call_tool("emu__add", {"a": 1, "b": 2})
            return names, ok, e.value.error

    names, ok, err = run(go())
    assert names == {"emu__echo"}
    assert text_of(ok) == "narrow"
    assert err.code == -32010 and "key's MCP policy" in err.message


def _stdio_children(gw: McpGateway) -> set[int]:
    """Pids of the gateway's `anycloud emulate --mcp-stdio` children."""
    import subprocess

    out = subprocess.run(["pgrep", "-P", str(gw.server_pid), "-f", "--", "--mcp-stdio"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_a_stdio_server_that_exits_is_started_again(gw):
    import os
    import signal
    import time

    async def echo(text: str):
        async with gw.client("agents") as c:
            try:
                return await c.call_tool("emustdio__echo", {"text": text})
            except MCPError as e:
                return e

    assert text_of(run(echo("before"))) == "before"
    before = _stdio_children(gw)
    assert len(before) == 1, before
    os.kill(before.pop(), signal.SIGKILL)
    until = time.monotonic() + 10
    while True:
        result = run(echo("after"))
        if not isinstance(result, MCPError):
            break
        # The call that finds the old process gone fails as `unavailable`; the next starts it again.
        assert result.error.code == -32012, result.error
        assert time.monotonic() < until, "the stdio server was not started again"
        time.sleep(0.1)
    assert text_of(result) == "after"
    assert len(_stdio_children(gw)) == 1
