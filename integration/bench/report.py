#!/usr/bin/python3
"""Summarise the bench runs: medians per proxy, and grayproxy's ratios to the others.

usage: report.py RUNS_TSV IDLE_TSV
RUNS_TSV columns: proxy kind round requests rps p50_us p99_us max_us cpu_us_per_req errors
IDLE_TSV columns: proxy conns_ok conns_failed rss_before_kib rss_after_kib still_open
"""
import statistics
import sys

PROXIES = ["grayproxy", "haproxy", "nginx"]


def load(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    return rows


def med(values):
    return statistics.median(values) if values else float("nan")


def fmt_ms(us):
    return "%.2f ms" % (us / 1000.0)


def main():
    runs = load(sys.argv[1])
    idle = {r["proxy"]: r for r in load(sys.argv[2])} if len(sys.argv) > 2 else {}
    m = {}
    for p in PROXIES:
        small = [r for r in runs if r["proxy"] == p and r["kind"] == "small"]
        large = [r for r in runs if r["proxy"] == p and r["kind"] == "large"]
        if not small:
            continue
        d = {
            "rps": med([float(r["rps"]) for r in small]),
            "p50": med([float(r["p50_us"]) for r in small]),
            "p99": med([float(r["p99_us"]) for r in small]),
            "cpu": med([float(r["cpu_us_per_req"]) for r in small]),
            "errors": sum(int(r["errors"]) for r in small + large),
            "rounds": len(small),
            "big_rps": med([float(r["rps"]) for r in large]),
            "big_cpu": med([float(r["cpu_us_per_req"]) for r in large]),
        }
        i = idle.get(p)
        if i and int(i["conns_ok"]) > 0:
            d["idle"] = (float(i["rss_after_kib"]) - float(i["rss_before_kib"])) / int(i["conns_ok"])
            d["idle_n"] = int(i["conns_ok"])
        else:
            d["idle"], d["idle_n"] = float("nan"), 0
        m[p] = d

    cols = ["proxy", "req/s (median)", "p50", "p99", "CPU µs/req", "idle KiB/conn",
            "1MiB req/s", "1MiB CPU µs/req", "errors"]
    rows = []
    for p, d in m.items():
        rows.append([p, "%.0f" % d["rps"], fmt_ms(d["p50"]), fmt_ms(d["p99"]),
                     "%.1f" % d["cpu"], "%.1f" % d["idle"], "%.0f" % d["big_rps"],
                     "%.0f" % d["big_cpu"], str(d["errors"])])
    g = m.get("grayproxy")
    for other in ("haproxy", "nginx"):
        o = m.get(other)
        if not g or not o:
            continue

        def r(k):
            return "%.2f" % (g[k] / o[k]) if o[k] else "n/a"
        rows.append(["grayproxy/" + other, r("rps"), r("p50"), r("p99"), r("cpu"),
                     r("idle"), r("big_rps"), r("big_cpu"), ""])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(cols))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    n = {p: d["rounds"] for p, d in m.items()}
    print()
    print("medians over %s rounds; idle = RSS growth / connections held (%s)" %
          (", ".join("%s %d" % kv for kv in n.items()),
           ", ".join("%s %d" % (p, d["idle_n"]) for p, d in m.items())))


if __name__ == "__main__":
    main()
