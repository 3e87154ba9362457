#!/usr/bin/env python3
"""The table of scripts/bench: reads what it recorded and prints the table on stdout.

    bench-report.py RESULTS.tsv BENCH_TMP OUT_DIR

RESULTS.tsv lines (tab-separated):
    info   KEY VALUE...
    run    BACKEND KIND RUN TOOL RAW_OUTPUT LOAD1 [PGBENCH_LOG_PREFIX]
    rss    BACKEND VMHWM_KB VMRSS_KB
The service's stderr is BENCH_TMP/service-BACKEND.stderr; its lines other than the access
log are copied to OUT_DIR/service-BACKEND.log.
"""

import collections
import glob
import os
import re
import statistics
import sys

KIND_LABEL = {
    "service": "service  GET async_status/{id}",
    "pgbench": "pgbench  SELECT ... WHERE id = :id",
    "ping": "service  GET ping",
}


def parse_wrk(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    m = re.search(r"^BENCH_RESULT (.*)$", text, re.M)
    if not m:
        raise SystemExit(f"bench-report: no BENCH_RESULT line in {path}")
    v = {k: float(x) for k, x in (kv.split("=", 1) for kv in m.group(1).split())}
    # wrk's own summary, as a cross-check of the Lua numbers.
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    summary_non2xx = int(non2xx.group(1)) if non2xx else 0
    if summary_non2xx != int(v["status"]):
        print(f"warning: {path}: wrk summary says {summary_non2xx} non-2xx, done() says "
              f"{int(v['status'])}", file=sys.stderr)
    return {
        "rps": v["requests"] / (v["duration_us"] / 1e6),
        "requests": int(v["requests"]),
        "p50": v["p50_us"] / 1000,
        "p99": v["p99_us"] / 1000,
        "mean": v["mean_us"] / 1000,
        "non2xx": int(v["status"]),
        "sock": "/".join(str(int(v[k])) for k in ("connect", "read", "write", "timeout")),
        "sock_total": sum(int(v[k]) for k in ("connect", "read", "write", "timeout")),
    }


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def parse_pgbench(path, log_prefix):
    text = open(path, encoding="utf-8", errors="replace").read()
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", text, re.M)
    if not tps:
        raise SystemExit(f"bench-report: no 'tps = ... (without initial connection time)' in {path}")
    avg = re.search(r"^latency average = ([\d.]+) ms", text, re.M)
    processed = re.search(r"^number of transactions actually processed: (\d+)", text, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", text, re.M)
    # Per-transaction latencies (µs, third column) of a 10% sample (--log --sampling-rate=0.1).
    latencies = []
    for log in glob.glob(glob.escape(log_prefix) + ".*"):
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3:
                    latencies.append(int(fields[2]))
    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return {
        "rps": float(tps.group(1)),
        "requests": int(processed.group(1)) if processed else 0,
        "p50": p50 / 1000 if p50 is not None else None,
        "p99": p99 / 1000 if p99 is not None else None,
        "mean": float(avg.group(1)) if avg else None,
        "non2xx": int(failed.group(1)) if failed else 0,
        "sock": "-",
        "sock_total": 0,
        "samples": len(latencies),
    }


LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$")
STATUS = re.compile(r"\bpath=(\S+) status=(\d+)")


def service_log(backend, tmp, out):
    """Tallies the service's log; copies its non-access lines to OUT/service-BACKEND.log."""
    path = os.path.join(tmp, f"service-{backend}.stderr")
    if not os.path.exists(path):
        return None
    total = 0
    statuses = collections.Counter()
    levels = collections.Counter()
    other = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            total += 1
            m = LINE.match(line)
            body = m.group(2) if m else line
            if m and body.startswith("access:"):
                s = STATUS.search(body)
                if s:
                    route = "ping" if s.group(1).endswith("/ping") else (
                        "async_status/{id}" if "/async_status/" in s.group(1) else s.group(1))
                    statuses[(route, s.group(2))] += 1
                continue
            levels[m.group(1) if m else "unparsed"] += 1
            other.append(line)
    with open(os.path.join(out, f"service-{backend}.log"), "w") as f:
        f.writelines(other[:2000])
        if len(other) > 2000:
            f.write(f"... and {len(other) - 2000} more lines\n")
    # Distinct WARN/ERROR/unparsed messages, without their timestamps.
    notable = collections.Counter()
    for line in other:
        m = LINE.match(line)
        if not m or m.group(1) in ("WARN", "ERROR"):
            notable[(m.group(1) + " " + m.group(2)) if m else line.rstrip()] += 1
    return total, statuses, levels, notable


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    results, tmp, out = sys.argv[1:4]
    info, runs, rss = {}, [], {}
    for line in open(results):
        f = line.rstrip("\n").split("\t")
        if f[0] == "info":
            info[f[1]] = f[2:]
        elif f[0] == "run":
            backend, kind, run, tool, raw, load = f[1:7]
            r = parse_wrk(raw) if tool == "wrk" else parse_pgbench(raw, f[7])
            r.update(backend=backend, kind=kind, run=int(run), load=load)
            runs.append(r)
        elif f[0] == "rss":
            rss[f[1]] = (int(f[2]), int(f[3]))

    duration, connections, jobs = info["params"]
    mem_gib = int(info["memory_kb"][0]) / 1024 / 1024
    p = print
    p(f"asyncstatus benchmark, {info['started'][0]} to {info['finished'][0]}")
    p(f"git       {info['git'][0]}")
    p(f"machine   {info['nproc'][0]} CPUs, {info['cpu'][0]}, {info['kernel'][0]}, "
      f"{mem_gib:.1f} GiB")
    p(f"load      {connections} connections, {duration} s per run, 1 wrk thread (wrk "
      f"{info['wrk'][0]}) / pgbench -M prepared -j 1; {jobs} seeded jobs; runs alternate")
    p("service   default configuration (RUST_LOG unset: info access log, to a file)")

    header = (f"  {'run':>3}  {'kind':<35} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'avg ms':>8} {'non-2xx':>8}  {'sock err c/r/w/t':<16} {'load1':>5}")
    sections = [
        ("postgres", f"PostgreSQL {info.get('postgres_version', ['?'])[0]} "
                     "(throwaway cluster from scripts/with-postgres: fsync off)",
         "pgbench", "service/pgbench"),
        ("traffic_ops", "Traffic Ops mode (database.layout = traffic_ops, same cluster): GET "
                        "on Traffic Ops' table through a Traffic Ops mojolicious cookie",
         "pgbench", "service/pgbench"),
        ("sqlite", "SQLite (temporary file)", "ping", "service/ping"),
    ]
    for backend, title, ceiling, ratio_label in sections:
        p()
        p(title)
        p(header)
        mine = [r for r in runs if r["backend"] == backend]
        for r in sorted(mine, key=lambda r: (r["run"], r["kind"] != "service")):
            p(f"  {r['run']:>3}  {KIND_LABEL[r['kind']]:<35} {r['rps']:>9.1f} "
              f"{fmt(r['p50'], '.3f'):>8} {fmt(r['p99'], '.3f'):>8} {fmt(r['mean'], '.3f'):>8} "
              f"{r['non2xx']:>8}  {r['sock']:<16} {r['load']:>5}")
        med = {k: statistics.median([r["rps"] for r in mine if r["kind"] == k])
               for k in ("service", ceiling) if any(r["kind"] == k for r in mine)}
        if "service" in med and ceiling in med:
            p(f"  median req/s: service {med['service']:.1f}, {ceiling} {med[ceiling]:.1f}; "
              f"{ratio_label} = {med['service'] / med[ceiling]:.3f}")
        if backend in rss:
            hwm, cur = rss[backend]
            p(f"  service peak RSS (VmHWM, after the runs): {hwm / 1024:.1f} MiB "
              f"(VmRSS then {cur / 1024:.1f} MiB)")
        logged = service_log(backend, tmp, out)
        if logged:
            total, statuses, levels, notable = logged
            st = ", ".join(f"{route} {code} x{n}" for (route, code), n in sorted(statuses.items()))
            lv = ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) or "none"
            p(f"  service log: {total} lines; access log: {st}")
            p(f"  other log lines: {lv} (in target/bench/service-{backend}.log)")
            for msg, n in notable.most_common(5):
                p(f"    x{n}: {msg[:150]}")
        if backend in ("postgres", "traffic_ops"):
            pg = [r for r in mine if r["kind"] == "pgbench"]
            samples = sum(r.get("samples", 0) for r in pg)
            p(f"  pgbench: p50/p99 from a 10% sample of its per-transaction log ({samples} "
              "transactions); non-2xx = failed transactions; no socket error counts")
    totals = [r for r in runs if r["kind"] != "pgbench"]
    bad = sum(r["non2xx"] + r["sock_total"] for r in totals)
    p()
    p("non-2xx: responses with status >= 400 as wrk counts them; socket errors: "
      "connect/read/write/timeout (timeout after 2 s)")
    if bad:
        p(f"WARNING: {bad} non-2xx responses or socket errors in the wrk runs")


if __name__ == "__main__":
    main()
