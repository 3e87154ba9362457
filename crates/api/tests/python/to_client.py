"""Drives asyncstatus with the real Traffic Ops Python client, unchanged.

usage: to_client.py PORT USER PASSWORD JOB_ID [--ssl]
Logs in, reads the job, and checks that a missing job raises the client's OperationError.
With --ssl it speaks HTTPS and accepts a self-signed certificate (verify_cert=False).
"""
import sys

from trafficops.restapi import OperationError
from trafficops.tosession import TOSession

port, user, password, job_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ssl = "--ssl" in sys.argv[5:]

session = TOSession(
    host_ip="127.0.0.1", host_port=int(port), api_version="4.0", ssl=ssl, verify_cert=False
)
session.login(user, password)

job, response = session.get("async_status/{id:d}", id=job_id)
assert response.status_code == 200, response.status_code
assert job.id == job_id, job
assert set(job.keys()) == {"id", "status", "start_time", "end_time", "message"}, job
assert job.end_time is None, job

try:
    session.get("async_status/{id:d}", id=job_id + 1000)
except OperationError as e:
    assert e.resp is not None and e.resp.status_code == 404, e
else:
    raise AssertionError("a missing job did not raise OperationError")

print("OK", job.status, job.message)
