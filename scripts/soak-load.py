#!/usr/bin/env python3
"""The load and the samples of scripts/soak (Python 3 standard library only).

    soak-load.py --base URL --pid PID --password PW --duration S --out SAMPLES.json
                 --lua scripts/soak.lua [--interval 30] [options]

Against a running service (BASE, e.g. http://127.0.0.1:PORT, whose process is PID):

- logs in once as admin (a Bearer token for everything below) and seeds --seed-jobs jobs
  (most finished, some PENDING), the readers' ids;
- then, for --duration seconds, all at once:
  * readers: wrk (1 thread, --read-connections connections, --read-delay-ms after each answer)
    on GET async_status/{random seeded id}; one wrk run per interval, so each interval has its
    own p50/p99;
  * producers: --producers threads, each keeping 3 jobs going: POST, heartbeats (PUT PENDING
    about once a second), finish (PUT SUCCEEDED or FAILED after 1-9 s), and a DELETE for a
    quarter of the finished ones;
  * long-pollers: --longpollers threads doing GET async_status/{id} with Prefer: wait=5 on jobs
    the producers just created, until the answer is final: a final answer must come after the
    producer sent the finish; a PENDING answer must come after the 5 s (not more than 2 s
    late), and never more than 1 s after the producer's finish was answered; 404 only for a
    deleted job;
  * a lister: GET async_status?status=PENDING&limit=50 every ~2 s;
- every --interval seconds: the service's VmRSS, threads and open files (/proc/PID), its CPU
  time (utime+stime from /proc/PID/stat), the machine's load and CPU use, the service's
  /metrics (long-poll waiters, pool), and per kind of request the count, p50/p99, 5xx,
  unexpected statuses and socket errors of the interval.

Python's requests go through urllib, one connection per request; wrk keeps its connections.
Everything is written to SAMPLES.json (also when interrupted or when the service dies, with
"aborted" saying why); scripts/soak-report.py turns it into the table. A one-line progress
report per interval goes to stderr. Exit status: 0 when the run went to its end, 1 otherwise
(errors are judged by the report, not here).
"""

import argparse
import collections
import ctypes
import heapq
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

API = "/api/4.0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT = 5  # Prefer: wait=WAIT
PRODUCER_JOBS = 3  # jobs each producer keeps going
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PRODUCER_KINDS = ("create", "heartbeat", "finish", "delete")


def log(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


def percentile(values, p):
    """Nearest-rank percentile of a list (sorted here); None when empty."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, -(-len(s) * p // 100))
    return s[int(rank) - 1]


# --- one interval's counts -------------------------------------------------------------------


class Interval:
    """What the Python clients did during one interval; swapped out at each sample."""

    def __init__(self):
        self.requests = collections.Counter()  # kind -> answered or failed requests
        self.latency = collections.defaultdict(list)  # kind -> seconds, answered requests
        self.status = collections.Counter()  # "kind status" -> n
        self.s5xx = collections.Counter()  # kind -> n
        self.unexpected = collections.Counter()  # "kind: what" -> n
        self.sock = collections.Counter()  # "kind: error" -> n
        self.longpoll = collections.Counter()  # outcome -> n
        self.wake = []  # seconds from the finish PUT being sent to the waiting poll's answer


LOCK = threading.Lock()
CUR = Interval()
ALL_LATENCY = collections.defaultdict(list)  # kind -> every latency of the run
STOP = threading.Event()


def note_unexpected(kind, what):
    with LOCK:
        CUR.unexpected[f"{kind}: {what}"] += 1


class Client:
    def __init__(self, base, token):
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method, path, body=None, headers=None, timeout=30.0):
        """One request on a new connection: (status, headers, bytes, seconds); socket errors
        and protocol errors raise."""
        data = None if body is None else json.dumps(body).encode()
        h = dict(self.auth)
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        t0 = time.monotonic()
        try:
            with OPENER.open(req, timeout=timeout) as r:
                payload = r.read()
                return r.status, r.headers, payload, time.monotonic() - t0
        except urllib.error.HTTPError as e:
            payload = e.read()
            return e.code, e.headers, payload, time.monotonic() - t0

    def request(self, kind, method, path, expect, body=None, headers=None, timeout=30.0):
        """A counted request: returns (status, headers, parsed JSON or None, seconds), or None
        after a socket error. Statuses outside `expect` are counted as unexpected (or 5xx)."""
        try:
            status, hdrs, payload, elapsed = self.call(method, path, body, headers, timeout)
        except Exception as e:  # noqa: BLE001 - every failure to get an answer is a socket error
            reason = getattr(e, "reason", None)
            name = type(reason).__name__ if isinstance(reason, BaseException) else type(e).__name__
            text = str(reason if reason is not None else e)[:80]
            with LOCK:
                CUR.requests[kind] += 1
                CUR.sock[f"{kind}: {name}: {text}"] += 1
            return None
        parsed = None
        if payload:
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = None
        with LOCK:
            CUR.requests[kind] += 1
            CUR.latency[kind].append(elapsed)
            ALL_LATENCY[kind].append(elapsed)
            CUR.status[f"{kind} {status}"] += 1
            if status >= 500:
                CUR.s5xx[kind] += 1
            elif status not in expect:
                text = ""
                if isinstance(parsed, dict) and parsed.get("alerts"):
                    text = " " + str(parsed["alerts"][0].get("text", ""))[:80]
                CUR.unexpected[f"{kind}: status {status}{text}"] += 1
        if status in expect and payload and parsed is None:
            note_unexpected(kind, f"status {status} with a body that is not JSON")
        return status, hdrs, parsed, elapsed


# --- what the producers did, for the long-pollers' checks -------------------------------------

JOBS_LOCK = threading.Lock()
JOBS = {}  # id -> {"created", "finish_sent", "finish_acked", "final", "deleting", "uncertain"}
LONGPOLL_QUEUE = queue.Queue(maxsize=16)


def job_info(jid):
    with JOBS_LOCK:
        j = JOBS.get(jid)
        return dict(j) if j else None


def job_update(jid, **kw):
    with JOBS_LOCK:
        if jid in JOBS:
            JOBS[jid].update(kw)


def producer(client, idx):
    rng = random.Random(1000 + idx)
    heap = []  # (due, seq, job)
    seq = 0
    active = 0
    created = 0
    while not STOP.is_set():
        now = time.monotonic()
        if active < PRODUCER_JOBS:
            r = client.request("create", "POST", f"{API}/async_status", (202,),
                               body={"message": f"soak producer {idx}: starting"})
            jid = None
            if r and r[0] == 202:
                try:
                    jid = int(r[2]["response"]["id"])
                except (TypeError, KeyError, ValueError):
                    note_unexpected("create", "202 without response.id")
            if jid is None:
                STOP.wait(1.0)
                continue
            now = time.monotonic()
            with JOBS_LOCK:
                JOBS[jid] = {"created": now, "finish_sent": None, "finish_acked": None,
                             "final": None, "deleting": False, "uncertain": False}
                created += 1
                if created % 500 == 0:  # forget jobs no long-poller can still hold
                    for old in [k for k, v in JOBS.items() if v["created"] < now - 300]:
                        del JOBS[old]
            try:
                LONGPOLL_QUEUE.put_nowait(jid)
            except queue.Full:
                pass
            job = {"id": jid, "end_at": now + rng.uniform(1, 9), "beats": 0, "state": "running"}
            seq += 1
            heapq.heappush(heap, (now + rng.uniform(0.5, 1.5), seq, job))
            active += 1
            continue
        due, _, job = heap[0]
        if due > now:
            STOP.wait(min(due - now, 0.5))
            continue
        heapq.heappop(heap)
        jid = job["id"]
        if job["state"] == "running" and now < job["end_at"]:
            job["beats"] += 1
            client.request("heartbeat", "PUT", f"{API}/async_status/{jid}", (200,),
                           body={"status": "PENDING", "message": f"step {job['beats']}"})
            seq += 1
            heapq.heappush(heap, (time.monotonic() + rng.uniform(0.7, 1.3), seq, job))
        elif job["state"] == "running":
            final = "SUCCEEDED" if rng.random() < 0.8 else "FAILED"
            job_update(jid, finish_sent=time.monotonic(), final=final)
            r = client.request("finish", "PUT", f"{API}/async_status/{jid}", (200,),
                               body={"status": final, "message": f"done after {job['beats']} steps"})
            if r and r[0] == 200:
                job_update(jid, finish_acked=time.monotonic())
            else:
                job_update(jid, uncertain=True)
            if rng.random() < 0.25:
                job["state"] = "finished"
                seq += 1
                heapq.heappush(heap, (time.monotonic() + rng.uniform(0.5, 3), seq, job))
            else:
                active -= 1
        else:
            job_update(jid, deleting=True)
            client.request("delete", "DELETE", f"{API}/async_status/{jid}", (200,))
            active -= 1


def longpoller(client, idx):
    while not STOP.is_set():
        try:
            jid = LONGPOLL_QUEUE.get(timeout=0.5)
        except queue.Empty:
            continue
        for _ in range(5):
            if STOP.is_set():
                break
            t_start = time.monotonic()
            r = client.request("longpoll", "GET", f"{API}/async_status/{jid}", (200, 404),
                               headers={"Prefer": f"wait={WAIT}"}, timeout=WAIT + 15)
            if r is None:
                break
            status, hdrs, body, elapsed = r
            t_end = t_start + elapsed
            j = job_info(jid)
            if status == 404:
                if j is not None and not j["deleting"] and not j["uncertain"]:
                    note_unexpected("longpoll", "404 for a job that was not deleted")
                with LOCK:
                    CUR.longpoll["404 (deleted)"] += 1
                break
            if status != 200:
                break
            if hdrs.get("Preference-Applied") != f"wait={WAIT}":
                note_unexpected("longpoll", f"Preference-Applied {hdrs.get('Preference-Applied')!r}")
            try:
                state = body["response"]["status"]
            except (TypeError, KeyError):
                note_unexpected("longpoll", "200 without response.status")
                break
            if j is None or j["uncertain"]:
                with LOCK:
                    CUR.longpoll["unchecked"] += 1
                if state != "PENDING":
                    break
                continue
            if state == "PENDING":
                if elapsed < WAIT - 0.1:
                    note_unexpected("longpoll", f"PENDING before the {WAIT} s wait was over")
                elif elapsed > WAIT + 2:
                    note_unexpected("longpoll", f"PENDING more than 2 s after the {WAIT} s wait")
                if j["finish_acked"] is not None and j["finish_acked"] < t_end - 1.0:
                    # The finish should have ended the wait (or been read at once).
                    note_unexpected("longpoll", "PENDING more than 1 s after the job was finished")
                with LOCK:
                    CUR.longpoll["timed out PENDING"] += 1
                continue
            sent = j["finish_sent"]
            if sent is None:
                note_unexpected("longpoll", f"{state} before the producer finished the job")
            elif state != j["final"]:
                note_unexpected("longpoll", f"{state}, but the producer finished it {j['final']}")
            elif sent > t_start:
                with LOCK:
                    CUR.longpoll["woken by the finish"] += 1
                    CUR.wake.append(t_end - sent)
            else:
                with LOCK:
                    CUR.longpoll["already final"] += 1
            break


def lister(client):
    rng = random.Random(7)
    while not STOP.wait(rng.uniform(1.5, 2.5)):
        r = client.request("list", "GET", f"{API}/async_status?status=PENDING&limit=50", (200,))
        if not r or r[0] != 200:
            continue
        body = r[2]
        try:
            jobs, count = body["response"], body["summary"]["count"]
        except (TypeError, KeyError):
            note_unexpected("list", "200 without response and summary.count")
            continue
        if len(jobs) > 50 or count < len(jobs) or any(j.get("status") != "PENDING" for j in jobs):
            note_unexpected("list", "list answer does not match status=PENDING&limit=50")


# --- set-up ----------------------------------------------------------------------------------


def login(base, password):
    c = Client(base, None)
    status, hdrs, payload, _ = c.call("POST", f"{API}/user/login", {"u": "admin", "p": password})
    if status != 200:
        sys.exit(f"soak: login answered {status}: {payload[:200]!r}")
    for cookie in hdrs.get_all("Set-Cookie") or []:
        m = re.match(r"access_token=([^;]+)", cookie)
        if m:
            return m.group(1)
    sys.exit("soak: the login answer set no access_token cookie")


def seed(client, n):
    """n jobs through the API, 4 at a time; 80% finished. Returns (first id, last id)."""
    ids, errors = [], []
    lock = threading.Lock()

    def worker(k):
        rng = random.Random(k)
        for i in range(k, n, 4):
            try:
                st, _, payload, _ = client.call("POST", f"{API}/async_status",
                                                {"message": f"soak seed job {i}"})
                if st != 202:
                    raise RuntimeError(f"POST answered {st}")
                jid = json.loads(payload)["response"]["id"]
                if rng.random() < 0.8:
                    final = "SUCCEEDED" if rng.random() < 0.9 else "FAILED"
                    st, _, _, _ = client.call("PUT", f"{API}/async_status/{jid}",
                                              {"status": final, "message": "seeded"})
                    if st != 200:
                        raise RuntimeError(f"PUT answered {st}")
                with lock:
                    ids.append(jid)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(str(e))
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"soak: seeding failed: {errors[0]}")
    ids.sort()
    if ids != list(range(ids[0], ids[0] + n)):
        sys.exit(f"soak: seeded ids are not contiguous ({ids[0]}..{ids[-1]}, {len(ids)} jobs)")
    return ids[0], ids[-1]


# --- samples ---------------------------------------------------------------------------------


def read_proc(pid):
    """VmRSS, VmHWM (KiB), threads, open files, CPU seconds (utime+stime) of the service."""
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))  # noqa: E731
    stat = open(f"/proc/{pid}/stat").read()
    rest = stat[stat.rindex(")") + 2:].split()  # fields from the 3rd (state) on
    cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime, stime: fields 14 and 15
    return {"rss_kb": field("VmRSS"), "hwm_kb": field("VmHWM"), "threads": field("Threads"),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "cpu_s": cpu}


def read_host():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return {"load1": float(open("/proc/loadavg").read().split()[0]),
            "host_busy": sum(fields) - idle, "host_total": sum(fields)}


def read_metrics(base):
    """A few gauges of /metrics; None when it could not be read (counted as an error of the
    interval: a 5xx, an unexpected status or a socket error)."""
    try:
        with OPENER.open(base + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        with LOCK:
            if e.code >= 500:
                CUR.s5xx["metrics"] += 1
            else:
                CUR.unexpected[f"metrics: status {e.code}"] += 1
        return None
    except Exception as e:  # noqa: BLE001
        with LOCK:
            CUR.sock[f"metrics: {type(e).__name__}: {str(e)[:80]}"] += 1
        return None
    out = {}
    for key, pattern in [("waiters", r"^asyncstatus_longpoll_waiters (\S+)"),
                         ("pool_open", r'^asyncstatus_db_pool_connections\{state="open"\} (\S+)'),
                         ("pool_in_use", r'^asyncstatus_db_pool_connections\{state="in_use"\} (\S+)'),
                         ("pool_timed_out", r'^asyncstatus_db_pool_checkouts\{outcome="timed_out"\} (\S+)'),
                         ("jobs_pending", r'^asyncstatus_jobs\{status="PENDING"\} (\S+)'),
                         ("jobs_succeeded", r'^asyncstatus_jobs\{status="SUCCEEDED"\} (\S+)'),
                         ("jobs_failed", r'^asyncstatus_jobs\{status="FAILED"\} (\S+)')]:
        m = re.search(pattern, text, re.M)
        out[key] = float(m.group(1)) if m else None
    return out


def set_pdeathsig():
    """wrk dies with this script (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def run_wrk(args, seconds, lo, hi, token, state):
    cmd = ["wrk", "-t1", f"-c{args.read_connections}", f"-d{seconds}s", "--timeout", "5s",
           "-s", args.lua, args.base, "--", str(lo), str(hi), token, str(args.read_delay_ms)]
    state["wrk"] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True,
                                    preexec_fn=set_pdeathsig)
    out, _ = state["wrk"].communicate()
    rc = state["wrk"].returncode
    state["wrk"] = None
    m = re.search(r"^SOAK_RESULT (.*)$", out, re.M)
    if rc != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {rc}): {out.strip()[-500:]}")
    v = {k: float(x) for k, x in (kv.split("=", 1) for kv in m.group(1).split())}
    return {"requests": int(v["requests"]), "seconds": v["duration_us"] / 1e6,
            "ok": int(v["ok"]), "s5xx": int(v["s5xx"]), "other": int(v["other"]),
            "p50_ms": v["p50_us"] / 1000, "p99_ms": v["p99_us"] / 1000,
            "max_ms": v["max_us"] / 1000,
            "sock": {k: int(v[k]) for k in ("connect", "read", "write", "timeout")}}


def summarize(iv):
    prod = [x for k in PRODUCER_KINDS for x in iv.latency[k]]
    ms = lambda x: None if x is None else x * 1000  # noqa: E731
    return {
        "requests": dict(iv.requests),
        "status": dict(iv.status),
        "s5xx": dict(iv.s5xx),
        "unexpected": dict(iv.unexpected),
        "sock": dict(iv.sock),
        "longpoll": dict(iv.longpoll),
        "producer_p50_ms": ms(percentile(prod, 50)),
        "producer_p99_ms": ms(percentile(prod, 99)),
        "list_p99_ms": ms(percentile(iv.latency["list"], 99)),
        "wake_p50_ms": ms(percentile(iv.wake, 50)),
        "wake_p99_ms": ms(percentile(iv.wake, 99)),
        "wake_max_ms": ms(max(iv.wake)) if iv.wake else None,
        "wake": [round(w * 1000, 3) for w in iv.wake],
    }


def main():
    global CUR
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lua", required=True)
    ap.add_argument("--seed-jobs", type=int, default=1000)
    ap.add_argument("--read-connections", type=int, default=8)
    ap.add_argument("--read-delay-ms", type=int, default=20)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--longpollers", type=int, default=4)
    args = ap.parse_args()

    state = {"wrk": None}
    result = {"params": {k: v for k, v in vars(args).items() if k != "password"},
              "samples": [], "aborted": None}

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)

    threads = []
    try:
        token = login(args.base, args.password)
        client = Client(args.base, token)
        log(f"seeding {args.seed_jobs} jobs")
        lo, hi = seed(client, args.seed_jobs)
        result["seeded"] = [lo, hi]

        t0 = time.monotonic()
        prev = {"t": 0.0, **read_proc(args.pid), **read_host()}
        result["samples"].append({"t": 0.0, "proc": read_proc(args.pid), "host": read_host(),
                                  "metrics": read_metrics(args.base)})
        threads += [threading.Thread(target=producer, args=(client, i), daemon=True)
                    for i in range(args.producers)]
        threads += [threading.Thread(target=longpoller, args=(client, i), daemon=True)
                    for i in range(args.longpollers)]
        threads.append(threading.Thread(target=lister, args=(client,), daemon=True))
        for t in threads:
            t.start()
        log(f"load for {args.duration} s: readers (wrk, {args.read_connections} connections, "
            f"{args.read_delay_ms} ms between requests), {args.producers} producers, "
            f"{args.longpollers} long-pollers, 1 lister; a sample every {args.interval} s")

        done = 0
        while done < args.duration:
            seconds = min(args.interval, args.duration - done)
            reads = run_wrk(args, seconds, lo, hi, token, state)
            done += seconds
            now = time.monotonic() - t0
            if not os.path.exists(f"/proc/{args.pid}"):
                raise RuntimeError("the service exited during the run")
            proc, host = read_proc(args.pid), read_host()
            metrics = read_metrics(args.base)  # its failure counts in this interval
            with LOCK:
                iv, CUR = CUR, Interval()
            dt = now - prev["t"]
            sample = {
                "t": now, "seconds": dt, "proc": proc, "host": host, "metrics": metrics,
                "cpu_pct": (proc["cpu_s"] - prev["cpu_s"]) / dt * 100,
                "host_pct": 100 * (host["host_busy"] - prev["host_busy"])
                / max(1, host["host_total"] - prev["host_total"]),
                "reads": reads, **summarize(iv),
            }
            result["samples"].append(sample)
            prev = {"t": now, **proc, **host}
            errs = (reads["s5xx"] + sum(reads["sock"].values()) + sum(iv.s5xx.values())
                    + sum(iv.sock.values()))
            log(f"{now:6.0f} s  rss {proc['rss_kb'] / 1024:.1f} MiB  cpu {sample['cpu_pct']:.0f}%  "
                f"reads {reads['requests']} (p99 {reads['p99_ms']:.1f} ms)  "
                f"python {sum(iv.requests.values())}  errors {errs}  load {host['load1']:.2f}")
    except SystemExit as e:
        if isinstance(e.code, int) and e.code >= 128:
            result["aborted"] = f"stopped by signal {e.code - 128}"
        else:
            result["aborted"] = str(e.code)
        raise
    except Exception as e:  # noqa: BLE001
        result["aborted"] = f"{type(e).__name__}: {e}"
        log(f"error: {result['aborted']}")
    finally:
        STOP.set()
        wrk = state["wrk"]
        if wrk is not None:
            wrk.terminate()
            try:
                wrk.wait(5)
            except subprocess.TimeoutExpired:
                wrk.kill()
        if result["aborted"] is None:
            # Let the last long-polls end, then look at what is left once the load stops.
            for t in threads:
                t.join(WAIT + 20)
            with LOCK:
                iv = CUR
            result["after"] = {**summarize(iv), "metrics": read_metrics(args.base)}
            if os.path.exists(f"/proc/{args.pid}"):
                result["after"]["proc"] = read_proc(args.pid)
        result["latency_ms"] = {k: {"n": len(v), "p50": percentile(v, 50) * 1000,
                                    "p99": percentile(v, 99) * 1000, "max": max(v) * 1000}
                                for k, v in ALL_LATENCY.items() if v}
        with open(args.out, "w") as f:
            json.dump(result, f)
    return 0 if result["aborted"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
