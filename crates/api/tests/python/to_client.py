"""Drives asyncstatus with the real Traffic Ops Python client, unchanged.

usage: to_client.py PORT USER PASSWORD JOB_ID [--ssl] [--lifecycle] [--traffic-ops]
Logs in, reads the job, and checks that a missing job raises the client's OperationError.
With --traffic-ops the service runs on a Traffic Ops database, and answers as Traffic Ops does:
a PENDING job has no end_time key at all.
With --ssl it speaks HTTPS and accepts a self-signed certificate (verify_cert=False).
With --lifecycle the job is one with every lifecycle key set (kind acme.renew, label
cdn=cdn1, progress 1/3, a cancel request), which the client reads beside Traffic Ops' keys.
"""
import sys

from trafficops.restapi import OperationError
from trafficops.tosession import TOSession

port, user, password, job_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ssl = "--ssl" in sys.argv[5:]
lifecycle = "--lifecycle" in sys.argv[5:]
traffic_ops = "--traffic-ops" in sys.argv[5:]

session = TOSession(
    host_ip="127.0.0.1", host_port=int(port), api_version="4.0", ssl=ssl, verify_cert=False
)
session.login(user, password)

job, response = session.get("async_status/{id:d}", id=job_id)
assert response.status_code == 200, response.status_code
assert job.id == job_id, job
if traffic_ops:
    # Traffic Ops omits the keys without a value, and adds none.
    assert set(job.keys()) == {"id", "status", "start_time", "message"}, job
else:
    TRAFFIC_OPS_KEYS = {"id", "status", "start_time", "end_time", "message"}
    assert TRAFFIC_OPS_KEYS <= set(job.keys()), job
    assert job.end_time is None, job
if lifecycle:
    assert job.kind == "acme.renew", job
    assert job.labels.cdn == "cdn1", job
    assert (job.progress.done, job.progress.total) == (1, 3), job
    assert job.cancel_requested is True and job.cancel_requested_by == user, job
    assert job.deadline is not None and job.heartbeat_timeout == 60, job

try:
    session.get("async_status/{id:d}", id=job_id + 1000)
except OperationError as e:
    assert e.resp is not None and e.resp.status_code == 404, e
else:
    raise AssertionError("a missing job did not raise OperationError")

print("OK", job.status, job.message)
