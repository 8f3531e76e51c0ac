#!/usr/bin/env python3
"""Reproduce moto's SQS race that loses and resurrects messages.

moto's `Queue.delete_message` (moto/sqs/models.py) rebuilds the queue's
message list from a snapshot without holding `_messages_lock`:

    new_messages = [m for m in self._messages if not deleted]
    self._messages = new_messages

while `add_message` appends under that lock. A SendMessageBatch whose appends
land during the rebuild is acknowledged and then dropped with the old list
(the message is never receivable: "lost"), and two deletes rebuilding at once
put back each other's deleted message (it is received again after its
visibility timeout: "delivered twice"). Real SQS does neither.

This script sends batches of 10 from many threads while others receive and
delete, on one queue of moto's server, and tracks every MessageId that
SendMessageBatch acknowledged against every id ever received. It stops when
every sender is done, no receiver holds a batch, and the queue shows no
visible and no in-flight message for a few checks in a row (or at --limit).

    /work/main/.venv/bin/python bench/moto-sqs-race.py            # the race
    /work/main/.venv/bin/python bench/moto-sqs-race.py --serialize # sends and
        # deletes under one lock in this script: nothing is lost

It starts its own moto_server on a free loopback port unless given --endpoint.
Exit status: 0 if nothing was lost or delivered twice, 1 otherwise.
"""

import argparse
import collections
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not start")


def client(endpoint):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", help="moto's server (default: start one)")
    p.add_argument("--senders", type=int, default=4, help="threads sending (4)")
    p.add_argument("--receivers", type=int, default=8, help="threads receiving and deleting (8)")
    p.add_argument("--batches", type=int, default=100, help="batches of 10 per sender (100)")
    p.add_argument("--visibility", type=int, default=5, help="the queue's visibility timeout, s (5)")
    p.add_argument("--limit", type=float, default=300, help="bound on the whole run, s (300)")
    p.add_argument(
        "--serialize",
        action="store_true",
        help="hold one lock around every SendMessageBatch and DeleteMessageBatch",
    )
    args = p.parse_args()

    proc = None
    endpoint = args.endpoint
    if not endpoint:
        proc, endpoint = start_moto()
    try:
        return run(args, endpoint)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)


def run(args, endpoint):
    sqs = client(endpoint)
    url = sqs.create_queue(
        QueueName=f"race-{uuid.uuid4().hex}",
        Attributes={"VisibilityTimeout": str(args.visibility)},
    )["QueueUrl"]

    # Sends and deletes under this lock with --serialize; receives never.
    mutating = threading.Lock() if args.serialize else None

    state = threading.Lock()
    sent = set()
    send_failed = 0
    received = collections.Counter()
    deleted = set()
    delete_failed = 0
    received_after_delete = set()
    holding = 0
    senders_left = args.senders
    stop = threading.Event()
    errors = []

    def mutate(call):
        if mutating is None:
            return call()
        with mutating:
            return call()

    def sender(k):
        nonlocal send_failed, senders_left
        c = client(endpoint)
        try:
            for b in range(args.batches):
                entries = [
                    {"Id": str(i), "MessageBody": f"s{k}-b{b}-m{i}"} for i in range(10)
                ]
                out = mutate(lambda: c.send_message_batch(QueueUrl=url, Entries=entries))
                with state:
                    sent.update(e["MessageId"] for e in out.get("Successful", []))
                    send_failed += len(out.get("Failed", []))
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            errors.append(f"sender {k}: {e!r}")
        finally:
            with state:
                senders_left -= 1

    def receiver(k):
        nonlocal holding, delete_failed
        c = client(endpoint)
        try:
            while not stop.is_set():
                with state:
                    holding += 1
                try:
                    got = c.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                    ).get("Messages", [])
                    if not got:
                        continue
                    with state:
                        for m in got:
                            received[m["MessageId"]] += 1
                            if m["MessageId"] in deleted:
                                received_after_delete.add(m["MessageId"])
                    by_entry = {str(i): m for i, m in enumerate(got)}
                    entries = [
                        {"Id": i, "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in by_entry.items()
                    ]
                    out = mutate(
                        lambda: c.delete_message_batch(QueueUrl=url, Entries=entries)
                    )
                    with state:
                        for e in out.get("Successful", []):
                            deleted.add(by_entry[e["Id"]]["MessageId"])
                        delete_failed += len(out.get("Failed", []))
                finally:
                    with state:
                        holding -= 1
                if not got:
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            errors.append(f"receiver {k}: {e!r}")

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(args.senders)]
    threads += [threading.Thread(target=receiver, args=(k,)) for k in range(args.receivers)]
    started = time.monotonic()
    for t in threads:
        t.start()

    # Done when the senders are, nobody holds a batch, and the queue shows
    # nothing visible and nothing in flight for five checks in a row.
    quiet = 0
    finished = False
    while time.monotonic() - started < args.limit:
        time.sleep(0.5)
        a = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        with state:
            idle = senders_left == 0 and holding == 0
        empty = (
            int(a["ApproximateNumberOfMessages"]) == 0
            and int(a["ApproximateNumberOfMessagesNotVisible"]) == 0
        )
        quiet = quiet + 1 if idle and empty else 0
        if quiet >= 5:
            finished = True
            break
    stop.set()
    for t in threads:
        t.join(timeout=60)

    lost = sent - set(received)
    twice = [i for i, n in received.items() if n > 1]
    print(
        f"mode: {'sends and deletes serialized by one lock' if args.serialize else 'concurrent (no lock)'}; "
        f"{args.senders} senders x {args.batches} batches of 10, {args.receivers} receivers, "
        f"visibility {args.visibility} s; moto at {endpoint}"
    )
    print(f"sent (acknowledged by SendMessageBatch): {len(sent)}  (failed entries: {send_failed})")
    print(f"received (distinct ids):                 {len(received)}")
    print(f"deleted (successful entries):            {len(deleted)}  (failed entries: {delete_failed})")
    print(f"lost (sent, never received):             {len(lost)}")
    print(f"delivered twice or more:                 {len(twice)}"
          f"  (of which received again after a successful delete: {len(received_after_delete)})")
    print(f"drained: {'yes' if finished else 'no, stopped at --limit'} in {time.monotonic() - started:.1f} s")
    for e in errors:
        print(f"error: {e}")
    return 0 if finished and not lost and not twice and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
