#!/usr/bin/env python3
"""Show moto's SQS race: two deletes at once lose acknowledged messages and bring deleted ones back.

What moto does (moto 5.2.5, moto/sqs/models.py, on CPython 3.11).
`Queue.add_message` appends to `self._messages` under `self._messages_lock` (a
`threading.Condition`); the only other user of that lock is `wait_for_messages`
(the long poll). `Queue.delete_message` takes no lock: it walks
`self._messages` and replaces it with the copy it built,

    new_messages = []
    for message in self._messages:
        if message.had_receipt_handle(receipt_handle):
            ...; continue
        new_messages.append(message)
    self._messages = new_messages

A lone delete does not drop a send: the walk follows the live list, so a
message appended while it walks is copied too, and between the walk's end and
the store (FOR_ITER, LOAD_FAST, LOAD_FAST, STORE_ATTR) CPython 3.11 never
switches threads. What breaks is two deletes at once (moto's server answers
each request on a thread of its own; DeleteMessageBatch calls delete_message
once per entry): the one that stores second stores a copy of the list the
first one had already replaced. That copy holds the first one's message again
(its delete was answered Successful; it is received again once its visibility
timeout ends: "came back") and lacks what was appended to the first one's list
in between (acknowledged by SendMessageBatch, never receivable: "lost").
`SQSBackend.receive_message` takes no lock either: two receives can both pass
`message.visible` before either marks the message received, so one message goes
to two receivers at once (if the second marks it after the first deleted it,
its new receipt handle can fail ReceiptHandleIsInvalid), and iterating
`_pending_messages` while another thread changes it sometimes fails the
ReceiveMessage ("Set changed size during iteration"). SQS loses nothing; it may
deliver a message twice (at least once), but not after a delete of it succeeded.

What this script does. Several threads send batches of 10 while others receive
(10 at a time, short polls) and delete each batch with DeleteMessageBatch, on
one queue with a 10 s visibility timeout; senders pause while the queue
reports --backlog messages or more (moto's receive reads the queue's
attributes, several scans of the whole list, for every message it returns, so
a big queue makes a run slow, not more telling). It records every MessageId
SendMessageBatch acknowledged, every receive of it (when the call started and
when it returned) and when a delete of it was first answered Successful. It
drains before it judges: it stops only when every sender is done, no receiver
holds a batch, nothing was received since the previous check, and the queue
reports no visible and no in-flight message (ApproximateNumberOfMessages and
ApproximateNumberOfMessagesNotVisible) for --quiet checks 0.25 s apart in a
row; at --limit it says it did not drain and judges nothing lost. Then:

  lost       acknowledged, never received, and the queue drained;
  came back  received by a call that started after a delete of that message
             had been answered Successful (the receive's start against the
             delete's answer, so a receive that overlapped the delete is not
             counted);
  at once    received again by a call that started before any Successful
             delete of it and before its visibility timeout could have ended;
  again after its visibility timeout, undeleted
             legitimate redelivery if a receiver held the message that long;
             the longest time from a receive's start to its delete's answer
             is printed.

Modes (each combines with --in-process and --switch-interval):

    python bench/moto-sqs-race.py                      # moto_server, no lock
    python bench/moto-sqs-race.py --serialize          # the control: one
        # (first come, first served) lock in this script around every
        # SendMessageBatch and DeleteMessageBatch
    python bench/moto-sqs-race.py --serialize-deletes  # deletes take turns
        # among themselves, sends run freely: is a send during a delete lost?
    python bench/moto-sqs-race.py --in-process         # the same calls on
        # moto's SQSBackend and Queue in this process, from threads: no HTTP
    ... --switch-interval 0.00001                      # sys.setswitchinterval
        # in the process moto runs in (default 0.005 s): threads switch more
        # often, so deletes overlap more often

What it showed here (2 cores shared with other work; defaults: 8 senders x 25
batches = 2000 messages, 8 receivers, backlog 200, visibility 10 s; runs took
13-110 s):
  --in-process: lost 28, 6, 0, 0; came back 37, 50, 0, 0 (4 runs: the race
    needs a thread switch inside a delete's walk, which is short at this
    backlog). With --switch-interval 0.00001: lost 0, 0, 10; came back 54,
    117, 39 (3 runs).
  --in-process --serialize and --in-process --serialize-deletes, at either
    interval: nothing lost, nothing came back (2 or 3 runs each).
  moto_server, default interval: nothing lost, nothing came back (4 runs).
    With --backlog 1000 (~140 s a run): lost 0, 0; came back 18, 20 (a
    receive to its delete's answer took up to 13 s there, past the timeout,
    so "again after its visibility timeout" may be legitimate at that
    backlog). With --switch-interval 0.00001: lost 2, 5, 0; came back 19, 99,
    24 (3 runs).
  moto_server --serialize and --serialize-deletes, at either interval:
    nothing lost, nothing came back (2 to 5 runs each).
  Every mode had a few "at once" (0-21 a run). In the runs that timed it, a
  receive to its delete's answer took at most 3.1 s at the default interval,
  7.3 s with 0.00001: well inside the timeout.

It starts its own moto_server on a free loopback port unless given --endpoint.
Exit status: 0 if drained with nothing lost and nothing come back, 1 otherwise
("at once" and "again after its visibility timeout" are reported, not failed:
SQS delivers at least once).
"""

import argparse
import collections
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

VISIBILITY = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(switch_interval):
    port = free_port()
    server = [os.path.join(os.path.dirname(sys.executable), "moto_server")]
    if switch_interval is not None:
        server = [
            sys.executable,
            "-c",
            f"import sys; sys.setswitchinterval({switch_interval!r}); "
            "from moto.server import main; sys.argv[0] = 'moto_server'; sys.exit(main())",
        ]
    proc = subprocess.Popen(
        server + ["-H", "127.0.0.1", "-p", str(port)],
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


class Http:
    """One queue on moto's server, a boto3 client per thread."""

    def __init__(self, endpoint, visibility):
        import boto3
        from botocore.config import Config

        self._boto3, self._config = boto3, Config(
            retries={"max_attempts": 1}, max_pool_connections=4
        )
        self.endpoint = endpoint
        self._local = threading.local()
        self.url = self._client().create_queue(
            QueueName=f"race-{uuid.uuid4().hex}",
            Attributes={"VisibilityTimeout": str(visibility)},
        )["QueueUrl"]

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._boto3.client(
                "sqs",
                endpoint_url=self.endpoint,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=self._config,
            )
        return c

    def send(self, bodies):
        out = self._client().send_message_batch(
            QueueUrl=self.url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
        )
        return [e["MessageId"] for e in out.get("Successful", [])], len(out.get("Failed", []))

    def receive(self):
        got = self._client().receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [(m["MessageId"], m["ReceiptHandle"]) for m in got]

    def delete(self, held):
        out = self._client().delete_message_batch(
            QueueUrl=self.url,
            Entries=[{"Id": str(i), "ReceiptHandle": h} for i, (_, h) in enumerate(held)],
        )
        ok = [held[int(e["Id"])][0] for e in out.get("Successful", [])]
        return ok, len(out.get("Failed", []))

    def counts(self):
        a = self._client().get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(a["ApproximateNumberOfMessages"]),
            int(a["ApproximateNumberOfMessagesNotVisible"]),
        )


class InProcess:
    """One queue on moto's SQSBackend in this process: the calls moto's
    responses make for each action, without HTTP or a server."""

    def __init__(self, visibility):
        from moto.sqs.models import sqs_backends

        self.endpoint = "in process"
        self.backend = sqs_backends["123456789012"]["us-east-1"]
        self.name = f"race-{uuid.uuid4().hex}"
        self.queue = self.backend.create_queue(self.name, VisibilityTimeout=str(visibility))

    def send(self, bodies):
        entries = {
            str(i): {"Id": str(i), "MessageBody": b, "MessageAttributes": {}, "DelaySeconds": None}
            for i, b in enumerate(bodies)
        }
        messages, failed = self.backend.send_message_batch(self.name, entries)
        return [m.id for m in messages], len(failed)

    def receive(self):
        got = self.backend.receive_message(self.name, 10, 0, self.queue.visibility_timeout)
        return [(m.id, m.receipt_handle) for m in got]

    def delete(self, held):
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, (_, h) in enumerate(held)]
        ok, failed = self.backend.delete_message_batch(self.name, entries)
        return [held[int(i)][0] for i in ok], len(failed)

    def counts(self):
        return (
            self.queue.approximate_number_of_messages,
            self.queue.approximate_number_of_messages_not_visible,
        )


class FairLock:
    """First come, first served, so that no thread waits out the visibility
    timeout behind a sender that keeps retaking the lock."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class NoLock:
    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", help="moto's server (default: start one)")
    p.add_argument("--in-process", action="store_true", help="moto's objects in this process, no server")
    p.add_argument("--senders", type=int, default=8, help="threads sending (8)")
    p.add_argument("--receivers", type=int, default=8, help="threads receiving and deleting (8)")
    p.add_argument("--batches", type=int, default=25, help="batches of 10 per sender (25)")
    p.add_argument("--backlog", type=int, default=200, help="senders pause while the queue reports this many messages or more (200): moto's scans are O(queue length)")
    p.add_argument("--visibility", type=int, default=VISIBILITY, help=f"the queue's visibility timeout, s ({VISIBILITY})")
    p.add_argument("--quiet", type=int, default=8, help="checks in a row (0.25 s apart) the drained queue must stand empty (8)")
    p.add_argument("--limit", type=float, default=150, help="bound on the whole run, s (150)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--serialize", action="store_true", help="one lock around every SendMessageBatch and DeleteMessageBatch")
    g.add_argument("--serialize-deletes", action="store_true", help="one lock around every DeleteMessageBatch only")
    p.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval, s, in the process moto runs in (this one with --in-process, "
        "else the moto_server it starts); CPython's default is 0.005; smaller switches threads more often",
    )
    args = p.parse_args()
    if args.switch_interval is not None:
        if args.endpoint:
            p.error("--switch-interval needs the moto_server this script starts, not --endpoint")
        if args.in_process:
            sys.setswitchinterval(args.switch_interval)

    if args.in_process:
        return run(args, InProcess(args.visibility))
    proc = None
    endpoint = args.endpoint
    if not endpoint:
        proc, endpoint = start_moto(args.switch_interval)
    try:
        return run(args, Http(endpoint, args.visibility))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)


def run(args, q):
    turns = FairLock() if args.serialize or args.serialize_deletes else NoLock()
    send_turns = turns if args.serialize else NoLock()

    state = threading.Lock()
    sent = set()
    send_failed = 0
    receives = collections.defaultdict(list)  # id -> [(started, returned)]
    received_total = 0
    confirmed = {}  # id -> when the first Successful delete of it was answered
    delete_failed = 0
    holding = 0
    longest_hold = 0.0
    senders_left = args.senders
    stop = threading.Event()
    room = threading.Event()  # set while the queue holds fewer than --backlog
    room.set()
    raised = collections.Counter()  # (call, exception) -> how many times

    def failed_call(call, e):
        where = [f for f in traceback.extract_tb(e.__traceback__) if "/moto/" in f.filename]
        at = f" (at moto/{where[-1].filename.split('/moto/')[-1]}:{where[-1].lineno})" if where else ""
        with state:
            raised[(call, f"{type(e).__name__}: {str(e)[:120]}{at}")] += 1
            if sum(raised.values()) > 1000:
                stop.set()  # something else is wrong: do not spin

    def sender(k):
        nonlocal send_failed, senders_left
        try:
            for b in range(args.batches):
                if stop.is_set():
                    break
                while not room.wait(0.25):
                    if stop.is_set():
                        return
                bodies = [f"s{k}-b{b}-m{i}" for i in range(10)]
                try:
                    with send_turns:
                        ids, failed = q.send(bodies)
                except Exception as e:  # noqa: BLE001 - counted and printed
                    failed_call("SendMessageBatch", e)  # not acknowledged: not counted as sent
                    continue
                with state:
                    sent.update(ids)
                    send_failed += failed
        finally:
            with state:
                senders_left -= 1

    def receiver(k):
        nonlocal holding, delete_failed, received_total, longest_hold
        while not stop.is_set():
            started = time.monotonic()
            try:
                got = q.receive()
            except Exception as e:  # noqa: BLE001 - counted and printed
                failed_call("ReceiveMessage", e)
                time.sleep(0.05)
                continue
            returned = time.monotonic()
            if not got:
                time.sleep(0.05)
                continue
            with state:
                holding += 1
                received_total += len(got)
                for mid, _ in got:
                    receives[mid].append((started, returned))
            try:
                with turns:
                    ok, failed = q.delete(got)
                    answered = time.monotonic()
                with state:
                    longest_hold = max(longest_hold, answered - started)
                    for mid in ok:
                        confirmed.setdefault(mid, answered)
                    delete_failed += failed
            except Exception as e:  # noqa: BLE001 - counted and printed; none confirmed
                failed_call("DeleteMessageBatch", e)
            finally:
                with state:
                    holding -= 1

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(args.senders)]
    threads += [threading.Thread(target=receiver, args=(k,), daemon=True) for k in range(args.receivers)]
    started = time.monotonic()
    for t in threads:
        t.start()

    quiet = 0
    drained = False
    sends_done_at = None
    last_total = -1
    most_held = 0  # the most messages (visible + in flight) the queue reported
    while time.monotonic() - started < args.limit and not stop.is_set():
        time.sleep(0.25)
        visible, in_flight = q.counts()
        most_held = max(most_held, visible + in_flight)
        if visible + in_flight >= args.backlog:
            room.clear()
        else:
            room.set()
        with state:
            senders_done = senders_left == 0
            idle = senders_done and holding == 0 and received_total == last_total
            last_total = received_total
        if senders_done and sends_done_at is None:
            sends_done_at = time.monotonic() - started
        quiet = quiet + 1 if idle and visible == 0 and in_flight == 0 else 0
        if quiet >= args.quiet:
            drained = True
            break
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(timeout=30)

    with state:
        lost = sent - set(receives)
        came_back, at_once, expired = set(), set(), set()
        came_back_receipts = 0
        last_receive = max((r for rs in receives.values() for _, r in rs), default=started) - started
        for mid, rs in receives.items():
            rs.sort()
            for prev, (s, r) in zip(rs, rs[1:]):
                if mid in confirmed and s > confirmed[mid]:
                    came_back.add(mid)
                    came_back_receipts += 1
                elif r >= prev[0] + args.visibility:
                    expired.add(mid)
                else:
                    at_once.add(mid)
        never_deleted = sent - set(confirmed) - lost

    mode = (
        "sends and deletes serialized by one lock (control)" if args.serialize
        else "deletes serialized among themselves, sends free" if args.serialize_deletes
        else "concurrent (no lock)"
    )
    print(
        f"mode: {mode}; {'in process, no HTTP' if args.in_process else 'moto_server at ' + q.endpoint}; "
        f"{args.senders} senders x {args.batches} batches of 10, {args.receivers} receivers, "
        f"visibility {args.visibility} s"
        + f"; moto's switch interval {args.switch_interval if args.switch_interval is not None else 0.005} s"
    )
    rows = [
        ("sent (acknowledged by SendMessageBatch)", f"{len(sent)}  (failed entries: {send_failed})"),
        ("received (distinct ids / receipts)", f"{len(receives)} / {received_total}"),
        ("deleted (Successful at least once)", f"{len(confirmed)}  (failed entries: {delete_failed})"),
        (
            "lost (acknowledged, never received)" if drained else "not received (NOT drained, so not judged lost)",
            f"{len(lost)}",
        ),
        ("came back (received after a Successful delete)", f"{len(came_back)}  ({came_back_receipts} receipts)"),
        ("at once (to two receives before any delete)", f"{len(at_once)}"),
        ("again after its visibility timeout, undeleted", f"{len(expired)}"),
        ("received, never deleted Successfully", f"{len(never_deleted)}"),
        ("longest from a receive's start to its delete's answer", f"{longest_hold:.2f} s"),
        ("most messages the queue reported at once", f"{most_held}"),
    ]
    for label, value in rows:
        print(f"{label + ':':54} {value}")
    print(
        f"drained: {'yes' if drained else 'NO, stopped at --limit'}; sends done at "
        f"{sends_done_at if sends_done_at is None else round(sends_done_at, 1)} s, last receive at "
        f"{last_receive:.1f} s, run {elapsed:.1f} s"
    )
    for (call, e), n in sorted(raised.items()):
        print(f"moto raised in {call}, {n} calls: {e}")
    return 0 if drained and not lost and not came_back else 1


if __name__ == "__main__":
    sys.exit(main())
