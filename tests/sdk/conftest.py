"""Session fixtures for the SDK conformance suite.

Starts the real `anycloud` binary twice: once as `anycloud emulate --port 0` (every
emulated cloud: Azure OpenAI, OpenAI-compatible, Anthropic, Bedrock, Vertex, OCI) and once
as `anycloud serve` with a config that puts them all behind the gateway. Nothing is built here: the binary
comes from `$ANYCLOUD_BIN`, else `$CARGO_TARGET_DIR/debug/anycloud`, else
`target/debug/anycloud` under the repository root (scripts/test.sh builds it first).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0
# `/metrics` needs a bearer token on the main listener (README "Security").
METRICS_TOKEN = "sdk-metrics-token-0123456789"


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if pytest dies without running its teardown."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def binary_path() -> Path:
    explicit = os.environ.get("ANYCLOUD_BIN")
    if explicit:
        return Path(explicit).resolve()
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = Path(target) if target else REPO_ROOT / "target"
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug" / "anycloud"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stdout/stderr are collected on background threads."""

    def __init__(self, name: str, argv: list[str], cwd: Path):
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self.p = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err), daemon=True).start()

    def _pump(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._cond:
                sink.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_lines(self, predicate, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                if self.p.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early ({self.p.returncode}):\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name} did not print what was expected in {timeout}s:\n{self.output()}")
                self._cond.wait(min(left, 0.2))
            return list(self.lines)

    def output(self) -> str:
        return "stdout:\n" + "\n".join(self.lines) + "\nstderr:\n" + "\n".join(self.err[-60:])

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


@dataclass
class Emulator:
    kind: str
    base_url: str  # as printed: OpenAI-compatible includes /v1, Azure does not
    api_key: str
    # The rest of the emulator's line: credentials for the clouds without an api key
    # (Bedrock's SigV4 keys, Vertex's service-account file, OCI's signing key).
    detail: str = ""

    def setting(self, name: str) -> str:
        m = re.search(re.escape(name) + r"\s+([^,;)\s]+)", self.detail)
        assert m, f"{self.kind} emulator did not print {name!r}: {self.detail}"
        return m.group(1)

    @property
    def control_url(self) -> str:
        return re.sub(r"/v1/?$", "", self.base_url) + "/_emulator"

    def faults(self, doc: dict) -> None:
        r = httpx.post(self.control_url + "/faults", json=doc, timeout=5)
        assert r.status_code == 200, r.text

    def reset(self) -> None:
        r = httpx.post(self.control_url + "/reset", timeout=5)
        assert r.status_code == 200, r.text

    def requests(self) -> int:
        r = httpx.get(self.control_url + "/stats", timeout=5)
        assert r.status_code == 200, r.text
        return int(r.json()["requests"])


@dataclass
class Gateway:
    base_url: str  # http://127.0.0.1:P  (no /v1)
    config_path: Path
    keys: dict[str, str]
    azure: Emulator
    local: Emulator
    binary: Path
    anthropic: Emulator
    workdir: Path
    server: Proc = field(repr=False)
    # Bedrock, Vertex and OCI, by emulator kind.
    more: dict[str, Emulator] = field(default_factory=dict)

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def emulators(self) -> list[Emulator]:
        return [self.azure, self.local, self.anthropic, *self.more.values()]

    def request_counts(self) -> dict[str, int]:
        return {"azure-us": self.azure.requests(), "local-openai": self.local.requests()}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cp = subprocess.run(
            [str(self.binary), *args],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and cp.returncode != 0:
            raise RuntimeError(f"anycloud {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        return cp

    def create_key(self, tenant: str, name: str | None = None) -> str:
        args = ["keys", "create", "--config", str(self.config_path), "--tenant", tenant]
        if name:
            args += ["--name", name]
        out = self.cli(*args).stdout.strip().splitlines()
        assert out, "keys create printed nothing"
        key = out[-1].strip()
        assert key and " " not in key, f"last stdout line is not a bare key: {out[-1]!r}"
        return key


def clouds_toml(emus: dict[str, Emulator], timeouts: str = "first_byte_timeout_ms = 2000") -> str:
    """`[[clouds]]` for every emulated cloud, each with the `timeouts` lines given."""
    azure, local, anthropic = emus["azure_openai"], emus["openai_compatible"], emus["anthropic"]
    bedrock, vertex, oci = emus["bedrock"], emus["vertex"], emus["oci"]
    return f"""
[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure.base_url}"
api_key = "{azure.api_key}"
api_version = "2024-10-21"
region = "eastus"
jurisdiction = "us"
{timeouts}

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local.base_url}"
api_key = "{local.api_key}"
jurisdiction = "us"
{timeouts}

[[clouds]]
name = "anthropic"
provider = "anthropic"
base_url = "{anthropic.base_url}"
api_key = "{anthropic.api_key}"
jurisdiction = "us"
{timeouts}

[[clouds]]
name = "openai"
provider = "openai"
base_url = "{local.base_url}"
api_key = "{local.api_key}"
jurisdiction = "us"
{timeouts}

[[clouds]]
name = "aws-eu"
provider = "bedrock"
base_url = "{bedrock.base_url}"
region = "{bedrock.setting('region')}"
access_key_id = "{bedrock.setting('access key')}"
secret_access_key = "{bedrock.setting('secret')}"
jurisdiction = "eu"
{timeouts}

[[clouds]]
name = "gcp-eu"
provider = "vertex"
base_url = "{vertex.base_url}"
project_id = "{vertex.setting('project')}"
region = "{vertex.setting('region')}"
credentials_file = "{vertex.setting('credentials_file')}"
jurisdiction = "eu"
{timeouts}

[[clouds]]
name = "oci-eu"
provider = "oci"
base_url = "{oci.base_url}"
region = "eu-frankfurt-1"
tenancy = "{oci.setting('tenancy')}"
user = "{oci.setting('user')}"
fingerprint = "{oci.setting('fingerprint')}"
key_file = "{oci.setting('key_file')}"
compartment_id = "{oci.setting('compartment')}"
jurisdiction = "eu"
{timeouts}
"""


def write_config(path: Path, listen: str, db: Path, emus: dict[str, Emulator]) -> None:
    path.write_text(
        f"""
[server]
listen = "{listen}"
metrics_token = "{METRICS_TOKEN}"
max_body_bytes = 65536

[store]
url = "sqlite://{db}"

{clouds_toml(emus)}
[[models]]
name = "claude-sonnet"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
capabilities = ["chat", "stream", "tools", "vision"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00, cached_input_per_mtok = 0.30, cache_write_per_mtok = 3.75, cache_write_1h_per_mtok = 6.00 }}

# One model per cloud for the conformance matrix (test_conformance_matrix.py).
[[models]]
name = "openai-direct"
[[models.deployments]]
cloud = "openai"
target = "gpt-4o-mini"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "bedrock-claude"
[[models.deployments]]
cloud = "aws-eu"
target = "anthropic.claude-3-5-sonnet-20240620-v1:0"
capabilities = ["chat", "stream", "tools", "vision"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00, cached_input_per_mtok = 0.30, cache_write_per_mtok = 3.75, cache_write_1h_per_mtok = 6.00 }}

[[models]]
name = "gemini"
[[models.deployments]]
cloud = "gcp-eu"
target = "gemini-2.0-flash"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "claude-vertex"
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
capabilities = ["chat", "stream", "tools", "vision"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00, cached_input_per_mtok = 0.30, cache_write_per_mtok = 3.75, cache_write_1h_per_mtok = 6.00 }}

[[models]]
name = "llama"
[[models.deployments]]
cloud = "oci-eu"
target = "meta.llama-3.3-70b-instruct"
capabilities = ["chat", "stream", "tools"]

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.50, output_per_mtok = 10.00 }}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "azure-only"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-mini-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "local-only"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o-mini"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "text-embedding-3-small"
[[models.deployments]]
cloud = "azure-us"
target = "embed-small"
capabilities = ["embeddings"]
[[models.deployments]]
cloud = "local-openai"
target = "text-embedding-3-small"
capabilities = ["embeddings"]

# Tests here make clouds fail on purpose, one after another, against one long-lived
# gateway: keep breakers from carrying one test's failures into the next, and allow one
# attempt per cloud (plus one same-cloud retry when a model has a single cloud).
[routing.breaker]
consecutive_failures = 1000000
error_rate = 1.0
window = 1000
min_requests = 1000
max_retry_after_ms = 1
cool_down_ms = 1

[routing.retry]
max_attempts = 2

[[tenants]]
name = "team"

[[tenants]]
name = "narrow"
models = ["local-only"]
"""
    )


ALL_EMULATORS = {"openai_compatible", "azure_openai", "anthropic", "bedrock", "vertex", "oci"}


def parse_emulators(lines: list[str]) -> dict[str, Emulator]:
    found: dict[str, Emulator] = {}
    for line in lines:
        m = re.match(r"^\s*(\w+)\s+(https?://\S+)\s+\((.*)\)\s*$", line)
        if not m:
            continue
        detail = m.group(3)
        key = re.match(r"api key:\s*(\S+)$", detail)
        found[m.group(1)] = Emulator(m.group(1), m.group(2).rstrip("/"), key.group(1) if key else "", detail)
    return found


def wait_healthy(url: str, proc: Proc) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"anycloud serve exited ({proc.p.returncode}):\n{proc.output()}")
        try:
            r = httpx.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"gateway not healthy after {STARTUP_TIMEOUT_S}s (last: {last}):\n{proc.output()}")


def start_emulators(binary: Path, workdir: Path, procs: list[Proc]) -> dict[str, Emulator]:
    """`anycloud emulate --port 0`: the emulated clouds by kind, once all of them are up."""
    emu = Proc("anycloud emulate", [str(binary), "emulate", "--port", "0"], workdir)
    procs.append(emu)
    lines = emu.wait_for_lines(
        lambda ls: ALL_EMULATORS <= set(parse_emulators(ls)),
        STARTUP_TIMEOUT_S,
    )
    return parse_emulators(lines)


@pytest.fixture(scope="session")
def gateway():
    binary = binary_path()
    if not binary.exists():
        pytest.exit(
            f"anycloud binary not found at {binary}; run scripts/test.sh (or cargo build -p anycloud) first",
            returncode=2,
        )
    workdir = Path(tempfile.mkdtemp(prefix="anycloud-sdk-"))
    procs: list[Proc] = []
    try:
        emus = start_emulators(binary, workdir, procs)
        azure, local, anthropic = emus["azure_openai"], emus["openai_compatible"], emus["anthropic"]
        assert local.base_url.endswith("/v1"), local.base_url
        assert not azure.base_url.endswith("/v1"), azure.base_url

        port = free_port()
        config = workdir / "anycloud.toml"
        write_config(config, f"127.0.0.1:{port}", workdir / "anycloud.db", emus)

        gw = Gateway(
            base_url=f"http://127.0.0.1:{port}",
            config_path=config,
            keys={},
            azure=azure,
            local=local,
            binary=binary,
            anthropic=anthropic,
            workdir=workdir,
            server=None,  # type: ignore[arg-type]
            more={k: emus[k] for k in ("bedrock", "vertex", "oci")},
        )
        gw.keys["team"] = gw.create_key("team", "sdk-suite")
        gw.keys["narrow"] = gw.create_key("narrow")
        gw.keys["revoked"] = gw.create_key("team", "to-revoke")
        gw.cli("keys", "revoke", "--config", str(config), gw.keys["revoked"])

        server = Proc("anycloud serve", [str(binary), "serve", "--config", str(config)], workdir)
        procs.append(server)
        gw.server = server
        wait_healthy(gw.base_url, server)
        yield gw
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(autouse=True)
def _reset_faults(request):
    """Every test starts and ends with both emulators fault-free."""
    if "gateway" not in request.fixturenames:
        yield
        return
    gw: Gateway = request.getfixturevalue("gateway")
    for e in gw.emulators():
        e.reset()
    yield
    for e in gw.emulators():
        e.reset()
