"""2 000 long-poll waiters on one asyncstatus process (the load check of `make bench-waiters`).

usage: bench-waiters.py BASE_URL TOKEN PID [WAITERS]
First times a producer's round trips: 300 sequential create + finish pairs on one keep-alive
connection. Then creates WAITERS jobs, parks one `Prefer: wait=60` request on each, samples the
service's RSS and CPU while they wait, finishes every job through the API and measures, per
job, the time from the finishing PUT's answer to its waiter's answer. Standard library only.
"""
import asyncio
import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlparse

BASE, TOKEN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
WAITERS = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
URL = urlparse(BASE)
TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


async def request(method, path, body=None, headers=()):
    """One HTTP/1.1 request on its own connection; returns (status, parsed JSON or None)."""
    reader, writer = await asyncio.open_connection(URL.hostname, URL.port)
    payload = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"Host: {URL.hostname}", f"Authorization: Bearer {TOKEN}",
            f"Content-Length: {len(payload)}", "Connection: close", *headers, "", ""]
    writer.write("\r\n".join(head).encode() + payload)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if body.strip() else None)


def proc_sample():
    rss = next(int(l.split()[1]) for l in open(f"/proc/{PID}/status") if l.startswith("VmRSS:"))
    fields = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return rss, int(fields[11]) + int(fields[12])  # KiB, utime+stime ticks


def producer_round_trips(pairs=300):
    """Sequential create + finish on one connection: (create ms, finish ms) per pair."""
    conn = http.client.HTTPConnection(URL.hostname, URL.port)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    timings = []
    for i in range(pairs):
        t0 = time.perf_counter()
        conn.request("POST", "/api/4.0/async_status", json.dumps({"message": f"p{i}"}), headers)
        created = conn.getresponse()
        job = json.loads(created.read())["response"]["id"]
        t1 = time.perf_counter()
        conn.request("PUT", f"/api/4.0/async_status/{job}", json.dumps({"status": "SUCCEEDED"}), headers)
        finished = conn.getresponse()
        finished.read()
        t2 = time.perf_counter()
        assert (created.status, finished.status) == (202, 200), (created.status, finished.status)
        timings.append(((t1 - t0) * 1000, (t2 - t1) * 1000))
    conn.close()
    return timings


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def main():
    pairs = producer_round_trips()
    creates, finishes = [c for c, _ in pairs], [f for _, f in pairs]
    both = [c + f for c, f in pairs]
    print(f"producer            {len(pairs)} sequential create+finish pairs: create p50 {percentile(creates, .5):.2f} ms, "
          f"finish p50 {percentile(finishes, .5):.2f} ms, pair p50 {percentile(both, .5):.2f} ms / p99 {percentile(both, .99):.2f} ms")
    sem = asyncio.Semaphore(32)

    async def limited(*args, **kw):
        async with sem:
            return await request(*args, **kw)

    created = await asyncio.gather(*(limited("POST", "/api/4.0/async_status", {"message": f"w{i}"}) for i in range(WAITERS)))
    ids = [body["response"]["id"] for status, body in created if status == 202]
    assert len(ids) == WAITERS, f"created {len(ids)} of {WAITERS}"
    rss_before, _ = proc_sample()

    answered = {}

    async def waiter(job):
        status, body = await request("GET", f"/api/4.0/async_status/{job}", headers=("Prefer: wait=60",))
        answered[job] = (time.monotonic(), status, body["response"]["status"] if body else None)

    tasks = [asyncio.create_task(waiter(j)) for j in ids]
    deadline = time.monotonic() + 30
    while True:  # until the service reports every waiter parked
        reader, writer = await asyncio.open_connection(URL.hostname, URL.port)
        writer.write("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        text = (await reader.read()).decode()
        writer.close()
        parked = next((float(l.split()[1]) for l in text.splitlines() if l.startswith("asyncstatus_longpoll_waiters ")), 0)
        if parked >= WAITERS:
            break
        assert time.monotonic() < deadline, f"only {parked} waiters parked"
        await asyncio.sleep(0.05)

    rss_parked, cpu0 = proc_sample()
    t0 = time.monotonic()
    await asyncio.sleep(5)
    rss_waiting, cpu1 = proc_sample()
    idle_cpu = (cpu1 - cpu0) / TICKS / (time.monotonic() - t0) * 100

    finished_at = {}

    async def finish(job):
        status, _ = await limited("PUT", f"/api/4.0/async_status/{job}", {"status": "SUCCEEDED"})
        assert status == 200, status
        finished_at[job] = time.monotonic()

    t_finish = time.monotonic()
    await asyncio.gather(*(finish(j) for j in ids))
    t_all_finished = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    rss_after, _ = proc_sample()

    wrong = [j for j, (_, s, st) in answered.items() if s != 200 or st != "SUCCEEDED"]
    lat = sorted(max(0.0, answered[j][0] - finished_at[j]) * 1000 for j in ids)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"waiters parked      {WAITERS}")
    print(f"service RSS         before {rss_before / 1024:.1f} MiB, {WAITERS} parked {rss_parked / 1024:.1f} MiB, "
          f"after 5 s {rss_waiting / 1024:.1f} MiB, after the wake-up {rss_after / 1024:.1f} MiB")
    print(f"service CPU         {idle_cpu:.1f}% of one core while {WAITERS} waited (5 s)")
    print(f"finishing           {WAITERS} PUTs in {(t_all_finished - t_finish) * 1000:.0f} ms (32 at a time)")
    print(f"wake-up latency     p50 {q(0.50):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms "
          f"(from each PUT's answer to its waiter's answer)")
    print(f"wrong answers       {len(wrong)}")
    return 1 if wrong else 0


sys.exit(asyncio.run(main()))
