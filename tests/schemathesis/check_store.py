"""After a schemathesis run: the table holds exactly what the successful
requests of the run had to leave, and nothing that a failed one left behind.

Only two answers may write: `201` from POST /miro/authorizations and the
one-click `401 miro_authorization_required` from POST /boards, one pending
authorization each, and the count of the user's live flows (`FLOWS#<user>`,
one item for the run's one user). Nothing the run sends can reach a code, a
connection or an idempotency record, so any other item is a failed
request's leftover.

    python check_store.py RUN.har TABLE   (DynamoDB endpoint from MIRO_CONNECT_TEST_DYNAMODB)
"""
import json
import os
import sys
from urllib.parse import urlparse

import boto3


def main(har_path: str, table: str) -> int:
    with open(har_path, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    writes = 0
    for e in entries:
        method = e["request"]["method"]
        path = urlparse(e["request"]["url"]).path
        status = e["response"]["status"]
        text = e["response"].get("content", {}).get("text") or ""
        if method == "POST" and path == "/miro/authorizations" and status == 201:
            writes += 1
        elif method == "POST" and path == "/boards" and status == 401 and "miro_authorization_required" in text:
            writes += 1
        if status >= 500:
            print(f"FAIL: {method} {path} answered {status}")
            return 1

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=os.environ["MIRO_CONNECT_TEST_DYNAMODB"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    kinds = {}
    for item in items:
        kind = item["pk"]["S"].split("#", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"schemathesis sent {len(entries)} requests; {writes} had to write; the table holds {kinds or 'nothing'}")
    leftovers = {k: n for k, n in kinds.items() if k not in ("AUTHZ", "FLOWS")}
    flows = 1 if writes else 0
    if leftovers or kinds.get("AUTHZ", 0) != writes or kinds.get("FLOWS", 0) != flows:
        print(f"FAIL: expected {writes} pending authorizations, {flows} flow count and nothing else")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
