"""Schemathesis hooks for `make fuzz` (scripts/fuzz): how generated requests authenticate.

Every operation that needs a token gets the Bearer token scripts/fuzz obtained
(ASYNCSTATUS_FUZZ_TOKEN), except `user/logout`: logging out revokes the session of the token it carries, so
each logout case gets a token of its own, fresh from a login, and the shared one stays valid.
If the shared token is refused anyway (401), Schemathesis asks for a new one: a fresh login.
"""

import os

import requests
import schemathesis

BASE = os.environ["ASYNCSTATUS_FUZZ_URL"]
USER = os.environ["ASYNCSTATUS_FUZZ_USER"]
PASSWORD = os.environ["ASYNCSTATUS_FUZZ_PASSWORD"]


def login() -> str:
    r = requests.post(f"{BASE}/api/5.0/user/login", json={"u": USER, "p": PASSWORD}, timeout=30)
    r.raise_for_status()
    return r.cookies["access_token"]


def bearer(case, token) -> None:
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.auth(refresh_interval=None).apply_to(operation_id="logout")
class FreshToken:
    def get(self, case, context):
        return login()

    def set(self, case, data, context):
        bearer(case, data)


@schemathesis.auth().skip_for(operation_id="logout")
class SharedToken:
    def __init__(self):
        self.given = False

    def get(self, case, context):
        if not self.given:
            self.given = True
            return os.environ["ASYNCSTATUS_FUZZ_TOKEN"]
        return login()

    def set(self, case, data, context):
        bearer(case, data)
