"""The running server against its own OpenAPI document (infra/openapi.json), with
Schemathesis: every operation, generated inputs valid and invalid, each call signed as a
real client or Slack would sign it. No answer may be a 5xx, every answer must be one the
document lists with the body it describes, and a refused submission stores nothing.

Run by tests/api.sh, which starts `cgr-request serve` and sets IMAGE_REQUEST_URL and
IMAGE_REQUEST_DATA_DIR; SCHEMATHESIS_EXAMPLES bounds the examples per operation.
"""

import hashlib
import hmac
import json
import os
import pathlib
import time

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

BASE = os.environ["IMAGE_REQUEST_URL"]
DATA_DIR = pathlib.Path(os.environ["IMAGE_REQUEST_DATA_DIR"])
SLACK_SECRET = os.environ["SLACK_SIGNING_SECRET"]
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))

CREDENTIALS = json.loads((DATA_DIR / "credentials.json").read_text())
ADMIN = next(c for c in CREDENTIALS["clients"] if c.get("admin"))


class SigningSession(requests.Session):
    """Signs each request on the exact bytes it sends, as the README says a client does:
    an admin client's v2 signature, or Slack's v0 one on the Slack routes."""

    def send(self, request, **kwargs):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        ts = str(int(time.time()))
        if request.path_url.startswith("/slack/"):
            base = b"v0:" + ts.encode() + b":" + body
            mac = hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()
            request.headers["X-Slack-Request-Timestamp"] = ts
            request.headers["X-Slack-Signature"] = "v0=" + mac
        else:
            h = request.headers
            signed = ":".join(
                [
                    "v2",
                    ts,
                    request.method,
                    request.path_url,
                    h.get("Content-Type", ""),
                    h.get("Idempotency-Key", ""),
                ]
            ).encode() + b":" + body
            mac = hmac.new(ADMIN["secret"].encode(), signed, hashlib.sha256).hexdigest()
            h["X-Client-Id"] = ADMIN["id"]
            h["X-Timestamp"] = ts
            h["X-Signature"] = "v2=" + mac
        return super().send(request, **kwargs)


SESSION = SigningSession()
schema = schemathesis.openapi.from_url(f"{BASE}/openapi.json")
# Every call is signed here, so a case that leaves a signature header out tests nothing.
schema.config.generation.update(with_security_parameters=False)


def stored_requests():
    r = SESSION.get(f"{BASE}/requests", params={"limit": "500"}, timeout=10)
    r.raise_for_status()
    return len(r.json()["requests"])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_server_keeps_its_contract(case):
    submission = case.method == "POST" and case.path == "/requests"
    before = stored_requests() if submission else None
    response = case.call(base_url=BASE, session=SESSION, timeout=10)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
    if submission and response.status_code >= 400:
        assert stored_requests() == before, f"a refused submission stored something: {response.text}"
