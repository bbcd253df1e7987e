#!/usr/bin/env python3
"""Summarise `perf script -F ip,sym` output (with call chains) of the gateway.

Usage: perf script -i perf.data -F ip,sym | python3 bench/profile_summary.py

Prints three tables, in % of the gateway's on-CPU samples:
  1. where the leaf is: kernel by syscall family, libc malloc/free/memcpy, or
     the first non-std Rust crate on the stack;
  2. inclusive share of selected components (a sample counts for every
     component found anywhere on its stack);
  3. the top leaf symbols.
"""
import collections
import re
import sys

KERNEL_BUCKETS = [
    ("kernel: socket send (loopback delivery, waking the peer)",
     ("tcp_sendmsg", "do_writev", "__sys_sendto", "sock_write_iter")),
    ("kernel: socket receive", ("tcp_recvmsg", "sock_read_iter", "__sys_recvfrom", "sock_recvmsg")),
    ("kernel: epoll", ("do_epoll_wait", "ep_poll", "do_epoll_ctl")),
    ("kernel: futex / thread wake-ups", ("futex",)),
    ("kernel: eventfd / other write", ("eventfd", "ksys_write")),
    ("kernel: accept / connect / close", ("accept", "connect", "__fput", "tcp_close")),
]

COMPONENTS = [
    ("anycloud_server::ingress::chat (handler, incl. callees)", r"anycloud_server::ingress::chat"),
    ("anycloud_server::auth", r"anycloud_server::auth"),
    ("anycloud_server (any)", r"anycloud_server"),
    ("anycloud_providers (any)", r"anycloud_providers"),
    ("anycloud_router", r"anycloud_router"),
    ("serde_json", r"serde_json"),
    ("reqwest / hyper client", r"reqwest|hyper::proto::h1::role::Client|dispatch::Client"),
    ("hyper server (h1 dispatch)", r"dispatch::Server|hyper::proto::h1::role::Server"),
    ("axum routing / tower layers", r"axum::routing|tower::|tower_http"),
    ("tracing", r"tracing(_core|_subscriber)?::"),
    ("sha2 / key hashing", r"sha2::|anycloud_store::keys"),
    ("tokio runtime (scheduler, timers, I/O driver)", r"tokio::runtime::(scheduler::multi_thread::worker::Context::(park|maintenance)|time|io::driver)"),
    ("malloc/free (libc)", r"malloc|_int_free|cfree|libc_free|tcache_"),
]

STD = {"core", "alloc", "std"}


def crate_of(sym):
    s = sym.lstrip("<&*").replace("dyn ", "").replace("mut ", "")
    head = re.split(r"[<\s(]", s, 1)[0]
    if "::" not in head:
        return None
    return head.split("::", 1)[0]


def main():
    samples = []
    cur = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]+", parts[0]):
            cur.append((parts[0], parts[1]))
    if cur:
        samples.append(cur)
    n = len(samples)
    if n == 0:
        print("no samples")
        return
    leaf = collections.Counter()
    leafsym = collections.Counter()
    comp = collections.Counter()
    for chain in samples:
        ip, sym = chain[0]
        leafsym[sym.split("+")[0]] += 1
        names = [s for _, s in chain]
        if ip.startswith("ffffffff"):
            b = "kernel: other (scheduling, interrupts, timers)"
            for label, keys in KERNEL_BUCKETS:
                if any(any(k in s for k in keys) for s in names if not s.startswith("[")):
                    b = label
                    break
            leaf[b] += 1
        elif re.search(r"malloc|_int_free|cfree|libc_free|realloc|tcache|^free$|__rustc::__rdl_|__rust_(alloc|dealloc|realloc)", sym):
            leaf["malloc/free (libc + Rust shims)"] += 1
        elif "memmove" in sym or "memcpy" in sym or "memset" in sym:
            leaf["libc memcpy/memmove/memset"] += 1
        else:
            c = None
            for s in names:
                c = crate_of(s)
                if c and c not in STD:
                    break
            leaf[f"user: {c or sym[:60]}"] += 1
        joined = "\n".join(names)
        for label, rx in COMPONENTS:
            if re.search(rx, joined, re.M):
                comp[label] += 1

    def table(title, counter, limit):
        print(f"\n{title}\n")
        print("| share | where |")
        print("|---:|---|")
        for k, v in counter.most_common(limit):
            print(f"| {100.0 * v / n:.1f}% | {k} |")

    print(f"{n} samples")
    table("Leaf (self) time by area", leaf, 20)
    table("Inclusive time by component", comp, 20)
    table("Top leaf symbols", leafsym, 15)


if __name__ == "__main__":
    main()
