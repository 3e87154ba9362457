#!/usr/bin/env python3
"""The table and summary of scripts/soak: reads what it recorded and prints them on stdout.

    soak-report.py SAMPLES.json INFO.tsv SERVICE_STDERR OUT_DIR BACKEND

SAMPLES.json is scripts/soak-load.py's output; INFO.tsv holds "KEY<TAB>VALUE" lines (the run's
time, machine, `uptime` before and after, how the service stopped). The service's log lines
other than its access log are copied to OUT_DIR/service-BACKEND.log.

Exit status 1 when any request got a 5xx (as the clients saw it or as the access log says),
any socket error happened, or the run did not reach its end; 0 otherwise. Unexpected statuses,
RSS growth and log warnings are reported, not judged.
"""

import collections
import json
import os
import re
import statistics
import sys

PRODUCER_KINDS = ("create", "heartbeat", "finish", "delete")
KIND_LABEL = {
    "read": "GET async_status/{id} (wrk readers)",
    "create": "POST async_status",
    "heartbeat": "PUT async_status/{id} PENDING",
    "finish": "PUT async_status/{id} SUCCEEDED/FAILED",
    "delete": "DELETE async_status/{id}",
    "longpoll": "GET async_status/{id}, Prefer: wait=5",
    "list": "GET async_status?status=PENDING&limit=50",
    "metrics": "GET /metrics (sampler)",
}
LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$")
ACCESS = re.compile(r"\bmethod=(\S+) path=(\S+) status=(\d+)")


def fmt(x, spec, width):
    return format("-" if x is None else format(x, spec), f">{width}")


def service_log(path, out_path):
    """Tallies the service's stderr: access-log statuses per route, other lines by level."""
    statuses = collections.Counter()
    levels = collections.Counter()
    notable = collections.Counter()
    other = []
    total = 0
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            total += 1
            m = LINE.match(line)
            body = m.group(2) if m else line.rstrip()
            if m and body.startswith("access:"):
                a = ACCESS.search(body)
                if a:
                    route = re.sub(r"/async_status/[^/?]+", "/async_status/{id}",
                                   a.group(2).split("?")[0])
                    route = re.sub(r"^/api/[^/]+", "", route)
                    statuses[(a.group(1) + " " + route, a.group(3))] += 1
                continue
            levels[m.group(1) if m else "unparsed"] += 1
            other.append(line)
            if not m or m.group(1) in ("WARN", "ERROR"):
                # Without the timestamp, and with numbers folded, so that repeats group.
                notable[re.sub(r"\d+", "N", (m.group(1) + " " + body) if m else body)[:160]] += 1
    with open(out_path, "w") as f:
        f.writelines(other[:5000])
        if len(other) > 5000:
            f.write(f"... and {len(other) - 5000} more lines\n")
    return total, statuses, levels, notable, other


def main():
    samples_path, info_path, stderr_path, out_dir, backend = sys.argv[1:6]
    data = json.load(open(samples_path))
    info = {}
    for line in open(info_path):
        k, _, v = line.rstrip("\n").partition("\t")
        info[k] = v
    params = data["params"]
    samples = data["samples"]
    base = samples[0] if samples else None
    rows = samples[1:]
    after = data.get("after") or {}
    p = print

    p(f"asyncstatus soak ({backend}), {info.get('started', '?')} to {info.get('finished', '?')}")
    p(f"git       {info.get('git', '?')}")
    p(f"machine   {info.get('nproc', '?')} CPUs, {info.get('cpu', '?')}, {info.get('kernel', '?')}, "
      f"{int(info.get('memory_kb', 0)) / 1024 / 1024:.1f} GiB")
    db = ("PostgreSQL " + info.get("postgres_version", "?")
          + " (throwaway cluster from scripts/with-postgres: fsync off), database soak"
          if backend == "postgres" else "SQLite (temporary file)")
    p(f"database  {db}")
    p("service   release build, default configuration (RUST_LOG unset: info access log, to a file)")
    p(f"load      {params['duration']} s: readers wrk {info.get('wrk', '?')} 1 thread, "
      f"{params['read_connections']} connections, {params['read_delay_ms']} ms pause after each "
      f"answer, on {params['seed_jobs']} seeded jobs; {params['producers']} producers (3 jobs each: "
      f"POST, PUT PENDING ~1/s, PUT SUCCEEDED/FAILED after 1-9 s, DELETE 1 in 4); "
      f"{params['longpollers']} long-pollers (Prefer: wait=5); 1 lister (~every 2 s)")
    p(f"uptime    before: {info.get('uptime_start', '?')}")
    p(f"          after:  {info.get('uptime_end', '?')}")
    if data.get("aborted"):
        p(f"ABORTED   {data['aborted']}")

    # --- the table ----------------------------------------------------------------------------
    p()
    p(f"Every {params['interval']} s (CPU% of one core, over the interval; rd = wrk readers; "
      "pr = producers' POST/PUT/DELETE; lp = long-polls answered; wake = finish PUT sent to the "
      "waiting poll's answer)")
    header = (f"{'t s':>5} {'RSS MiB':>7} {'CPU%':>5} {'thr':>3} {'fds':>4} │ {'rd req/s':>8} "
              f"{'rd p50':>6} {'rd p99':>6} │ {'pr req/s':>8} {'pr p50':>6} {'pr p99':>6} │ "
              f"{'lp':>4} {'wake p99':>8} {'list':>4} │ {'5xx':>3} {'unexp':>5} {'sock':>4} │ "
              f"{'waiters':>7} {'pool':>4} {'host%':>5} {'load1':>5}")
    p(header)
    p("─" * len(header))
    if base:
        pr, m = base["proc"], base.get("metrics") or {}
        p(f"{0:>5} {pr['rss_kb'] / 1024:>7.1f} {'-':>5} {pr['threads']:>3} {pr['fds']:>4} │ "
          f"{'-':>8} {'-':>6} {'-':>6} │ {'-':>8} {'-':>6} {'-':>6} │ {'-':>4} {'-':>8} {'-':>4} │ "
          f"{'-':>3} {'-':>5} {'-':>4} │ {fmt(m.get('waiters'), '.0f', 7)} "
          f"{fmt(m.get('pool_open'), '.0f', 4)} {'-':>5} {base['host']['load1']:>5.2f}")
    for s in rows:
        pr, r, m = s["proc"], s["reads"], s.get("metrics") or {}
        prod_n = sum(s["requests"].get(k, 0) for k in PRODUCER_KINDS)
        lp = sum(s["longpoll"].values())
        s5 = r["s5xx"] + sum(s["s5xx"].values())
        unexp = r["other"] + sum(s["unexpected"].values())
        sock = sum(r["sock"].values()) + sum(s["sock"].values())
        p(f"{s['t']:>5.0f} {pr['rss_kb'] / 1024:>7.1f} {s['cpu_pct']:>5.1f} {pr['threads']:>3} "
          f"{pr['fds']:>4} │ {r['requests'] / r['seconds']:>8.1f} {r['p50_ms']:>6.2f} "
          f"{r['p99_ms']:>6.2f} │ {prod_n / s['seconds']:>8.1f} "
          f"{fmt(s['producer_p50_ms'], '.2f', 6)} {fmt(s['producer_p99_ms'], '.2f', 6)} │ "
          f"{lp:>4} {fmt(s['wake_p99_ms'], '.1f', 8)} {s['requests'].get('list', 0):>4} │ "
          f"{s5:>3} {unexp:>5} {sock:>4} │ {fmt(m.get('waiters'), '.0f', 7)} "
          f"{fmt(m.get('pool_open'), '.0f', 4)} {s['host_pct']:>5.0f} {s['host']['load1']:>5.2f}")
    p("(waiters = asyncstatus_longpoll_waiters and pool = open database connections, from /metrics "
      "at the sample; host% = the machine's CPU in use, all cores)")

    # --- totals -------------------------------------------------------------------------------
    requests = collections.Counter()
    statuses = collections.Counter()
    s5xx = collections.Counter()
    unexpected = collections.Counter()
    sock = collections.Counter()
    longpoll = collections.Counter()
    wake = []
    for s in rows + ([after] if after else []):
        requests.update(s["requests"])
        statuses.update(s["status"])
        s5xx.update(s["s5xx"])
        unexpected.update(s["unexpected"])
        sock.update(s["sock"])
        longpoll.update(s["longpoll"])
        wake += s["wake"]
    reads = {"requests": 0, "ok": 0, "s5xx": 0, "other": 0,
             "sock": collections.Counter()}
    for s in rows:
        for k in ("requests", "ok", "s5xx", "other"):
            reads[k] += s["reads"][k]
        reads["sock"].update(s["reads"]["sock"])
    if reads["s5xx"]:
        s5xx["read"] += reads["s5xx"]
    if reads["other"]:
        unexpected["read: status other than 200 or 5xx"] += reads["other"]
    for k, n in reads["sock"].items():
        if n:
            sock[f"read: wrk {k} errors"] += n

    p()
    p("Summary")
    if base and rows:
        rss = [s["proc"]["rss_kb"] / 1024 for s in rows]
        hwm = max(s["proc"]["hwm_kb"] for s in rows) / 1024
        p(f"  RSS          start {base['proc']['rss_kb'] / 1024:.1f} MiB (after seeding, before the "
          f"load); end {rss[-1]:.1f} MiB; max sampled {max(rss):.1f} MiB; peak (VmHWM) {hwm:.1f} MiB")
        duration = rows[-1]["t"]
        first = [s["proc"]["rss_kb"] for s in rows if s["t"] <= duration / 4 + 1] or [rows[0]["proc"]["rss_kb"]]
        last = [s["proc"]["rss_kb"] for s in rows if s["t"] > duration * 3 / 4 + 1] or [rows[-1]["proc"]["rss_kb"]]
        q1, q4 = statistics.mean(first) / 1024, statistics.mean(last) / 1024
        growth = (q4 - q1) / q1 * 100
        verdict = ("MORE than 20%: a hint of a leak" if growth > 20 else "not more than 20%: no sign of a leak")
        p(f"  RSS growth   first quarter mean {q1:.1f} MiB ({len(first)} samples), last quarter mean "
          f"{q4:.1f} MiB ({len(last)} samples): {growth:+.1f}%, {verdict}")
        cpu = (rows[-1]["proc"]["cpu_s"] - base["proc"]["cpu_s"])
        p(f"  CPU          {cpu:.1f} s of CPU in {duration:.0f} s: {cpu / duration * 100:.1f}% of one core "
          f"on average (intervals: min {min(s['cpu_pct'] for s in rows):.1f}%, max "
          f"{max(s['cpu_pct'] for s in rows):.1f}%)")
        p(f"  threads/fds  {base['proc']['threads']} / {base['proc']['fds']} at the start, "
          f"{rows[-1]['proc']['threads']} / {rows[-1]['proc']['fds']} at the end, at most "
          f"{max(s['proc']['threads'] for s in rows)} / {max(s['proc']['fds'] for s in rows)}")
        loads = [s["host"]["load1"] for s in rows]
        host = [s["host_pct"] for s in rows]
        p(f"  machine      load1 min {min(loads):.2f}, median {statistics.median(loads):.2f}, max "
          f"{max(loads):.2f}; CPU in use (all cores) median {statistics.median(host):.0f}%, max "
          f"{max(host):.0f}%")

    p()
    p("  Requests by kind (the whole run; latencies in ms)")
    p(f"    {'kind':<44} {'requests':>9} {'p50':>8} {'p99':>8} {'max':>8}  answers")
    lat = data.get("latency_ms", {})
    if rows:
        rp50 = statistics.median([s["reads"]["p50_ms"] for s in rows])
        rp99 = max(s["reads"]["p99_ms"] for s in rows)
        rmax = max(s["reads"]["max_ms"] for s in rows)
        p(f"    {KIND_LABEL['read']:<44} {reads['requests']:>9} {rp50:>8.2f} {rp99:>8.2f} "
          f"{rmax:>8.2f}  200 x{reads['ok']}" + (f", 5xx x{reads['s5xx']}" if reads['s5xx'] else "")
          + (f", other x{reads['other']}" if reads['other'] else ""))
    for kind in ("create", "heartbeat", "finish", "delete", "longpoll", "list"):
        st = ", ".join(f"{k.split()[1]} x{n}" for k, n in sorted(statuses.items())
                       if k.split()[0] == kind)
        L = lat.get(kind, {})
        p(f"    {KIND_LABEL[kind]:<44} {requests.get(kind, 0):>9} {fmt(L.get('p50'), '.2f', 8)} "
          f"{fmt(L.get('p99'), '.2f', 8)} {fmt(L.get('max'), '.2f', 8)}  {st}")
    total = reads["requests"] + sum(v for k, v in requests.items() if k != "metrics")
    p(f"    {'all':<44} {total:>9}")
    p("    (readers: p50 = median of the intervals' p50, p99 and max = the worst interval's; "
      "long-poll latencies include the wait)")
    lp_total = sum(longpoll.values())
    p(f"  Long-polls   {lp_total} answered: " + ", ".join(f"{k} x{n}" for k, n in longpoll.most_common()))
    if wake:
        ws = sorted(wake)
        pct = lambda q: ws[max(0, -(-len(ws) * q // 100) - 1)]  # noqa: E731
        p(f"               woken by the finish: finish PUT sent -> poll answered p50 {pct(50):.1f} ms, "
          f"p99 {pct(99):.1f} ms, max {ws[-1]:.1f} ms ({len(ws)} polls)")
    if rows:
        r99 = [s["reads"]["p99_ms"] for s in rows]
        p99s = [s["producer_p99_ms"] for s in rows if s["producer_p99_ms"] is not None]
        p(f"  p99 over time  readers: first {r99[0]:.2f}, median {statistics.median(r99):.2f}, "
          f"last {r99[-1]:.2f}, worst {max(r99):.2f} ms")
        if p99s:
            p(f"                 producers: first {p99s[0]:.2f}, median {statistics.median(p99s):.2f}, "
              f"last {p99s[-1]:.2f}, worst {max(p99s):.2f} ms")

    p()
    n5 = sum(s5xx.values())
    nu = sum(unexpected.values())
    ns = sum(sock.values())
    p(f"  Errors       5xx {n5}, unexpected statuses or answers {nu}, socket errors {ns} "
      "(wrk: connect/read/write/timeout after 5 s; Python: any failure to get an answer)")
    for title, counter in (("5xx", s5xx), ("unexpected", unexpected), ("socket", sock)):
        for k, n in counter.most_common(8):
            p(f"    {title}: {k} x{n}")

    m = after.get("metrics") or {}
    if after:
        p(f"  After the load  long-poll waiters {fmt(m.get('waiters'), '.0f', 1)}, pool "
          f"{fmt(m.get('pool_in_use'), '.0f', 1)} in use of {fmt(m.get('pool_open'), '.0f', 1)} open "
          f"({fmt(m.get('pool_timed_out'), '.0f', 1)} checkouts timed out in the run); jobs "
          f"PENDING {fmt(m.get('jobs_pending'), '.0f', 1)}, SUCCEEDED "
          f"{fmt(m.get('jobs_succeeded'), '.0f', 1)}, FAILED {fmt(m.get('jobs_failed'), '.0f', 1)}")
    p(f"  Stop         {info.get('stop', '?')}")

    logged = service_log(stderr_path, os.path.join(out_dir, f"service-{backend}.log"))
    log_5xx = 0
    if logged:
        total_lines, st, levels, notable, other = logged
        log_5xx = sum(n for (_, code), n in st.items() if code.startswith("5"))
        p(f"  Service log  {total_lines} lines; other than the access log: "
          + (", ".join(f"{k} {v}" for k, v in sorted(levels.items())) or "none")
          + f" (in target/soak/service-{backend}.log)")
        p("    access log: " + ", ".join(f"{route} {code} x{n}" for (route, code), n in sorted(st.items())))
        for msg, n in notable.most_common(8):
            p(f"    x{n}: {msg}")
        if log_5xx:
            p(f"    the access log shows {log_5xx} answers with a 5xx status")
        if data.get("aborted"):
            p("    its last lines other than the access log:")
            for line in other[-6:]:
                p("      " + line.rstrip()[:200])

    failed = bool(n5 or ns or log_5xx or data.get("aborted"))
    p()
    if failed:
        why = [w for w, c in (("5xx answers", n5 or log_5xx), ("socket errors", ns),
                              (f"the run did not finish ({data.get('aborted')})", data.get("aborted"))) if c]
        p("RESULT: FAIL (" + "; ".join(why) + ")")
    else:
        warn = []
        if nu:
            warn.append(f"{nu} unexpected answers")
        if base and rows and growth > 20:
            warn.append("RSS grew more than 20%")
        if logged and any(k.startswith(("WARN", "ERROR")) for k in logged[3]):
            warn.append("warnings in the service log")
        p("RESULT: PASS (no 5xx, no socket errors)" + (" — but " + ", ".join(warn) if warn else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
