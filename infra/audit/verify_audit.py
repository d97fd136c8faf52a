#!/usr/bin/env python3
"""Verifies an Image Request audit trail without the project's code: standard library only.

    cgr-request -o json audit --request req-... > trail.json
    python3 verify_audit.py --keys audit-keys.json trail.json [more.json ...]

Each file is what `cgr-request -o json audit --request ID` prints (the request and its
events). The keys file is the audit-keys parameter's JSON: {"active": "a1", "keys":
{"a1": "..."}}. For every event it checks, in order: the sequence numbers run 1, 2, 3...;
each event names the previous event's hash; its hash is SHA-256 of its canonical bytes;
its seal is HMAC-SHA256 under the named key of b"image-request/audit/v1\\n" followed by
the same bytes; and the trail ends at the request's own head and version. The canonical
bytes (ARCHITECTURE.md, "The audit chain") are the event's JSON without hash, key_id and
mac, fields in the order below, no spaces, non-ASCII kept as UTF-8. Prints one line per
trail; exits 1 when any is broken, naming the first broken event.
"""
import argparse
import hashlib
import hmac
import json
import sys

GENESIS = "0" * 64
MAC_CONTEXT = b"image-request/audit/v1\n"
# `kind` is written only for a removal: an addition's bytes leave it out.
FIELDS = ["request_id", "kind", "seq", "at", "actor", "action", "from", "to", "reason", "channel", "prev_hash"]


def canonical(event):
    ordered = {}
    for f in FIELDS:
        if f == "kind" and event.get("kind", "add") == "add":
            continue
        ordered[f] = event.get(f)
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def first_break(events, keys):
    """(seq, why) of the first broken event, or None."""
    prev = GENESIS
    for i, e in enumerate(events):
        expected = i + 1
        if e.get("seq") != expected:
            return expected, f"event {expected} is missing (found {e.get('seq')} next)"
        seq = e["seq"]
        if e.get("prev_hash") != prev:
            return seq, "it does not chain to the event before it"
        body = canonical(e)
        if hashlib.sha256(body).hexdigest() != e.get("hash"):
            return seq, "its content does not match its hash (changed after it was written)"
        kid, mac = e.get("key_id"), e.get("mac")
        if kid is None or mac is None:
            return seq, "it carries no seal (written without the audit key)"
        if kid not in keys:
            return seq, f"it is sealed with audit key `{kid}`, which this verifier was not given"
        expected_mac = hmac.new(keys[kid].encode("utf-8"), MAC_CONTEXT + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected_mac, mac):
            return seq, "its seal does not match: changed, or hashed again by someone without the audit key"
        prev = e["hash"]
    return None


def check(trail, keys):
    request, events = trail["request"], trail["events"]
    broken = first_break(events, keys)
    if broken:
        return f"audit chain broken at event {broken[0]}: {broken[1]}"
    head = events[-1]["hash"] if events else ""
    if len(events) != request["version"] or head != request["audit_head"]:
        return (
            f"audit chain broken at event {len(events) + 1}: the request is at version {request['version']} "
            f"with head {request['audit_head']}, the trail has {len(events)} events ending in {head or 'nothing'}"
        )
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", required=True, help="the audit keys' JSON file")
    parser.add_argument("trails", nargs="+", help="`cgr-request -o json audit --request ID` outputs")
    args = parser.parse_args()
    with open(args.keys, encoding="utf-8") as f:
        keys = json.load(f)["keys"]
    failed = False
    for path in args.trails:
        with open(path, encoding="utf-8") as f:
            trail = json.load(f)
        rid = trail["request"]["id"]
        problem = check(trail, keys)
        if problem:
            failed = True
            print(f"{rid}: {problem}")
        else:
            print(f"{rid}: the audit chain holds ({len(trail['events'])} events, head {trail['events'][-1]['hash']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
