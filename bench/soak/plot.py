"""RSS and p99 over time from the soak's CSV (bench/soak/run.sh): plot.py IN.csv OUT.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
load = [r for r in rows if r["p99_ms"]]
t = [float(r["t_s"]) / 60 for r in load]
fig, ax1 = plt.subplots(figsize=(9, 4.5))
ax1.plot(t, [float(r["rss_mib"]) for r in load], color="tab:blue", label="RSS (MiB)")
idle = [r for r in rows if not r["p99_ms"]]
if idle:
    ax1.scatter([float(r["t_s"]) / 60 for r in idle], [float(r["rss_mib"]) for r in idle],
                color="tab:blue", marker="x", label="RSS after 15 s idle")
ax1.set_xlabel("minutes")
ax1.set_ylabel("RSS (MiB)", color="tab:blue")
ax1.set_ylim(bottom=0)
ax2 = ax1.twinx()
ax2.plot(t, [float(r["p99_ms"]) for r in load], color="tab:red", label="p99 (ms)")
ax2.set_ylabel("p99 latency (ms)", color="tab:red")
ax2.set_ylim(bottom=0)
fig.legend(loc="lower right")
fig.suptitle(sys.argv[3] if len(sys.argv) > 3 else "anycloud soak")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
