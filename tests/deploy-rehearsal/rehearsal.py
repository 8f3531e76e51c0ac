"""The deploy rehearsal: infra/template.yaml as a stack on moto, and the
connect -> board -> event flow through the functions it configured.

1. `sam package`, offline: each function's binary (the workspace's debug
   build of `Metadata.BuildProperties.Binary`) zipped as `bootstrap` into
   moto's S3, and its `CodeUri` pointed there.
2. `aws-sam-translator` turns the SAM template into CloudFormation, with the
   parameter values below (the real transform, run here instead of in AWS).
3. moto's CloudFormation creates the stack (`moto_models.py` adds handlers
   for the types the flow needs that moto has none for). Every resource the
   template has and the stack has not is listed by type; a missing type the
   flow needs (FLOW_NEEDS) fails the rehearsal, any other is reported and
   the rehearsal goes on.
4. Every function of the stack runs under a minimal Lambda Runtime API (one
   per function), with exactly the environment moto stored for it, plus
   what Lambda itself sets (AWS_LAMBDA_*, region, credentials) and, as the
   only changes, AWS_ENDPOINT_URL (moto), MIRO_AUTH_BASE_URL and
   MIRO_API_BASE_URL (the Miro emulator).
5. The flow, with the rehearsal playing API Gateway from the routes,
   integrations and authorizer moto stored (the JWT authorizer's claims are
   made here, not verified) and Lambda's SQS poller from the event source
   mapping moto stored: connect (start, consent at the emulator, callback,
   complete), POST /boards, GET /miro/connections, then a Create Miro Board
   event on the stack's bus, routed by the stack's rule to the stack's
   queue, consumed by board-events, and its outcome event read back from
   the bus.
"""

import base64
import io
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import boto3
import requests
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = ROOT / ".local" / "deploy-rehearsal"
TEMPLATE = ROOT / "infra" / "template.yaml"
BIN = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve() / "debug"
REGION = "us-east-1"
STACK = "miro-connect-rehearsal"
USER = "rehearsal-user"
TRUSTED_SOURCE = "rehearsal.app"
APP_ORIGIN = "https://app.rehearsal.example"

# Without one of these the flow cannot run: the rehearsal fails if the
# stack lacks a resource of such a type. Any other type moto cannot create
# (alarms, schedules, the API stage, policies) is listed and skipped.
FLOW_NEEDS = {
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::Events::EventBus",
    "AWS::Events::Rule",
    "AWS::SQS::Queue",
    "AWS::Lambda::EventSourceMapping",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
}


class Failure(Exception):
    pass


def log(message: str) -> None:
    print(f"[deploy-rehearsal] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


# ---- the template --------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader)


def parameter_values(client_secret: str) -> dict:
    keys = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "MiroClientId": "3458764600000000001",
        "MiroClientSecret": client_secret,
        "TokenSealingKeys": keys,
        "AppOrigins": APP_ORIGIN,
        "DefaultReturnTo": f"{APP_ORIGIN}/miro",
        "JwtIssuer": "https://issuer.rehearsal.example",
        "JwtAudience": "miro-connect-rehearsal",
        "EventProducers": "123456789012",
        "TrustedEventSources": TRUSTED_SOURCE,
    }


def package(template: dict, s3, bucket: str) -> None:
    """What `sam package` does for each function: its code to S3."""
    s3.create_bucket(Bucket=bucket)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        check(binary is not None, f"{logical_id} names no Metadata.BuildProperties.Binary")
        path = BIN / binary
        check(path.is_file(), f"{path} is missing: build it first (tests/deploy-rehearsal/run does)")
        body = io.BytesIO()
        with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            z.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED, 1)
        key = f"{binary}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=body.getvalue())
        resource["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": key}


class _NoManagedPolicies:
    """The translator resolves AWS managed policy names from the map it
    ships, and asks IAM (this loader) only for a name not in it: none here."""

    def load(self) -> dict:
        return {}


def translate(template: dict, values: dict) -> dict:
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return transform(template, dict(values), _NoManagedPolicies())


# ---- the stack -----------------------------------------------------------


def moto_cfn_types() -> set:
    """The types moto's CloudFormation has a handler for (its own, and the
    ones moto_models.py adds), as the server computes them."""
    sys.path.insert(0, str(HERE))
    sys.dont_write_bytecode = True  # no __pycache__ in the tree
    import moto_models  # noqa: F401
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def create_stack(cfn, body: dict, template: dict, values: dict) -> None:
    declared = template.get("Parameters", {})
    missing = [p for p, d in declared.items() if p not in values and "Default" not in d]
    check(not missing, f"template parameters without a value here: {', '.join(missing)} (add them to parameter_values)")
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items() if k in declared],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    for _ in range(120):
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if e.get("ResourceStatusReason")]
        raise Failure(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}; " + "; ".join(reasons[:5]))


def coverage(cfn, body: dict, supported: set) -> dict:
    """Which of the template's resources the stack has; fails if the flow
    needs one it has not. Returns logical id -> physical id."""
    from moto_models import ADDED_TYPES

    created = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=STACK):
        for r in page["StackResourceSummaries"]:
            # moto lists a resource it did not create as an empty entry.
            if r["LogicalResourceId"]:
                created[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    not_created = defaultdict(list)
    added = defaultdict(list)
    by_condition = []
    for logical_id, resource in body["Resources"].items():
        kind = resource["Type"]
        if logical_id in created:
            if kind in ADDED_TYPES:
                added[kind].append(logical_id)
        elif kind in supported and "Condition" in resource:
            by_condition.append(logical_id)
        else:
            not_created[kind].append(logical_id)
    total = len(body["Resources"])
    log(f"stack {STACK}: {len(created)} of {total} resources created")
    if added:
        log("moto has no CloudFormation handler for these types; moto_models.py's handlers created them "
            "through moto's own service APIs:")
        for kind, ids in sorted(added.items()):
            log(f"  {kind} x{len(ids)}: {', '.join(ids)}")
    log("moto_models.py also gives AWS::Events::EventBus the Ref value CloudFormation gives it (the bus's name), "
        "which moto lacks")
    if by_condition:
        log(f"not created, their Condition is false: {', '.join(by_condition)}")
    if not_created:
        log("moto cannot create these resource types; the stack has none of them:")
        for kind, ids in sorted(not_created.items()):
            need = "NEEDED BY THE FLOW" if kind in FLOW_NEEDS else "not needed by the flow, skipped"
            log(f"  {kind} x{len(ids)} ({need}): {', '.join(ids)}")
    else:
        log("moto created every resource type of the template")
    needed = sorted(k for k in not_created if k in FLOW_NEEDS)
    check(not needed, f"the flow needs resources moto did not create: {', '.join(needed)}")
    return created


# ---- Lambda: a Runtime API per function ----------------------------------


class Function:
    """One function's process under a Runtime API of its own: the process
    asks for the next event, answers it, asks again, as under Lambda."""

    def __init__(self, logical_id: str, binary: str, config: dict, env: dict):
        self.logical_id = logical_id
        self.binary = binary
        self.name = config["FunctionName"]
        self.arn = config["FunctionArn"]
        self.timeout = int(config.get("Timeout", 3))
        self.ready = threading.Event()
        self.init_error = None
        self.pending: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self.answers: dict = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _runtime_handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}")
        self.log_path = STATE / f"{logical_id}.log"
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(BIN / binary)], env=env, stdout=self.log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ready.is_set():
                return
            if self.init_error is not None or self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure(f"{self.binary} did not start (init error: {self.init_error}); its log:\n{self.log_tail()}")

    def invoke(self, event: dict) -> dict:
        request_id = str(uuid.uuid4())
        box: "queue.Queue[tuple[str, bytes]]" = queue.Queue(1)
        self.answers[request_id] = box
        self.pending.put((request_id, json.dumps(event).encode()))
        try:
            kind, payload = box.get(timeout=self.timeout + 5)
        except queue.Empty:
            raise Failure(f"{self.binary} did not answer within its timeout ({self.timeout} s); its log:\n{self.log_tail()}")
        if kind != "response":
            raise Failure(f"{self.binary} failed: {payload.decode(errors='replace')}; its log:\n{self.log_tail()}")
        return json.loads(payload)

    def log_tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.server.shutdown()
        self.log_file.close()


def _runtime_handler(function: Function):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/2018-06-01/runtime/invocation/next":
                return self._reply(404)
            function.ready.set()
            request_id, event = function.pending.get()
            deadline = int(time.time() * 1000) + function.timeout * 1000
            self._reply(200, event, {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": function.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                                           f"Parent={secrets.token_hex(8)};Sampled=0",
            })

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            m = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
            if m and m.group(1) in function.answers:
                function.answers.pop(m.group(1)).put((m.group(2), body))
                return self._reply(202, b"{}")
            if self.path == "/2018-06-01/runtime/init/error":
                function.init_error = body.decode(errors="replace")
                return self._reply(202, b"{}")
            self._reply(404)

    return Handler


def lambda_environment(config: dict, stack_env: dict, logging_config: dict, overrides: dict) -> dict:
    """What Lambda gives the process: the function's own variables as the
    stack set them, Lambda's runtime variables, and the rehearsal's few."""
    env = dict(stack_env)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
        "AWS_LAMBDA_LOG_GROUP_NAME": logging_config.get("LogGroup") or f"/aws/lambda/{config['FunctionName']}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "rehearsal",
        "_HANDLER": config.get("Handler", "bootstrap"),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        # Lambda's are the role's temporary credentials; moto takes any.
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "TZ": ":UTC",
    })
    if logging_config.get("LogFormat"):
        env["AWS_LAMBDA_LOG_FORMAT"] = logging_config["LogFormat"]
    env.update(overrides)
    return env


# ---- API Gateway, as the stack's routes say ------------------------------


class Gateway:
    """Routes a request as the HTTP API moto stored (routes, integrations,
    authorizer) and invokes the function with a payload 2.0 event. The JWT
    authorizer is not run: its claims are made here for a named user."""

    def __init__(self, apigw, api_id: str, functions: list):
        self.api_id = api_id
        by_arn = {f.arn: f for f in functions}
        integrations = {i["IntegrationId"]: i for i in apigw.get_integrations(ApiId=api_id)["Items"]}
        self.routes = []
        for route in apigw.get_routes(ApiId=api_id)["Items"]:
            target = route.get("Target", "")
            check(target.startswith("integrations/"), f"route {route['RouteKey']} has no integration")
            integration = integrations[target.split("/", 1)[1]]
            check(integration["IntegrationType"] == "AWS_PROXY" and integration.get("PayloadFormatVersion") == "2.0",
                  f"route {route['RouteKey']}: not a Lambda proxy integration with payload 2.0")
            uri = integration["IntegrationUri"]
            function = by_arn.get(uri) or next((f for a, f in by_arn.items() if a in uri), None)
            check(function is not None, f"route {route['RouteKey']} goes to {uri}, no function of the stack")
            jwt = None
            if route.get("AuthorizationType") == "JWT":
                authorizer = apigw.get_authorizer(ApiId=api_id, AuthorizerId=route["AuthorizerId"])
                check(authorizer["AuthorizerType"] == "JWT", f"route {route['RouteKey']}: not a JWT authorizer")
                jwt = authorizer["JwtConfiguration"]
            method, path = route["RouteKey"].split(" ", 1)
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
            self.routes.append((method, re.compile(pattern), route["RouteKey"], function, jwt))

    def route_table(self) -> list:
        return sorted(f"{key} -> {f.binary}{' (JWT)' if jwt else ''}" for _, _, key, f, jwt in self.routes)

    def request(self, method: str, path: str, query: str = "", body=None, user: str | None = None):
        for route_method, pattern, route_key, function, jwt in self.routes:
            m = pattern.match(path)
            if route_method == method and m:
                break
        else:
            raise Failure(f"no route of the stack takes {method} {path}")
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {"host": f"{self.api_id}.execute-api.{REGION}.amazonaws.com", "user-agent": "deploy-rehearsal"}
        if raw:
            headers["content-type"] = "application/json"
        context = {
            "accountId": "123456789012",
            "apiId": self.api_id,
            "domainName": headers["host"],
            "domainPrefix": self.api_id,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": headers["user-agent"]},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        }
        if jwt is not None:
            check(user is not None, f"{route_key} needs a JWT")
            now = int(time.time())
            claims = {"sub": user, "iss": jwt["Issuer"], "aud": jwt["Audience"][0], "iat": str(now), "exp": str(now + 3600)}
            context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
            headers["authorization"] = "Bearer <verified by the authorizer>"
        params = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        event = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if params:
            event["queryStringParameters"] = params
        if m.groupdict():
            event["pathParameters"] = m.groupdict()
        if raw:
            event["body"] = raw.decode()
        reply = function.invoke(event)
        text = reply.get("body") or ""
        if reply.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        answer_headers = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
        return reply["statusCode"], answer_headers, (json.loads(text) if text.startswith(("{", "[")) else text)


# ---- the flow ------------------------------------------------------------


def expect(answer, status: int, what: str):
    code, headers, body = answer
    check(code == status, f"{what}: expected {status}, got {code}: {body}")
    return headers, body


def sqs_event(messages: list, queue_arn: str) -> dict:
    """The event Lambda's SQS poller hands the function."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    } for m in messages]}


def receive(sqs, queue_url: str, seconds: float, max_messages: int = 10) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=1,
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if got:
            return got
    return []


def run_flow(aws: dict, gateway: Gateway, functions: dict, outputs: dict, emulator: str) -> None:
    stats = lambda: requests.get(f"{emulator}/_emulator/stats", timeout=5).json()  # noqa: E731

    log("connect: POST /miro/authorizations")
    _, started = expect(gateway.request("POST", "/miro/authorizations", body={}, user=USER), 201, "start")
    authorize_url = started["authorize_url"]
    check(authorize_url.startswith(emulator + "/oauth/authorize?"), f"authorize_url is not the emulator's: {authorize_url}")
    page = requests.get(authorize_url, timeout=5)
    check(page.status_code == 200, f"the consent page answered {page.status_code}")
    consent = requests.post(authorize_url, data={"decision": "allow"}, allow_redirects=False, timeout=5)
    check(consent.status_code == 303, f"consent answered {consent.status_code}: {consent.text[:200]}")
    back = consent.headers["location"]
    redirect_uri = outputs["MiroRedirectUri"]
    check(back.startswith(redirect_uri + "?"), f"Miro sent the browser to {back}, not the stack's MiroRedirectUri {redirect_uri}")
    log(f"consent: Miro redirects to the stack's MiroRedirectUri ({redirect_uri})")

    log("connect: GET /miro/callback")
    headers, _ = expect(gateway.request("GET", "/miro/callback", query=urlsplit(back).query), 303, "callback")
    returned = urlsplit(headers["location"])
    check(f"{returned.scheme}://{returned.netloc}" == APP_ORIGIN, f"the callback sent the browser to {headers['location']}")
    completion = dict(parse_qsl(returned.query)).get("miro_authorization")
    check(completion is not None, f"the callback answered {headers['location']}")

    log("connect: POST /miro/authorizations/complete")
    _, done = expect(gateway.request("POST", "/miro/authorizations/complete",
                                     body={"completion": completion, "flow_secret": started["flow_secret"]}, user=USER),
                     200, "complete")
    check("connection" in done, f"complete answered {done}")
    token_calls = stats()["token_calls"]
    check(token_calls >= 1, "the emulator saw no code exchange")

    log("board: POST /boards")
    _, made = expect(gateway.request("POST", "/boards", body={"name": "Rehearsal board"}, user=USER), 201, "POST /boards")
    check(made["board"]["name"] == "Rehearsal board" and "Rehearsal board" in stats()["board_names"],
          f"the board is not at the emulator: {made}")

    log("connections: GET /miro/connections")
    _, listed = expect(gateway.request("GET", "/miro/connections", user=USER), 200, "GET /miro/connections")
    check(len(listed["connections"]) == 1 and listed["connections"][0]["default"], f"connections: {listed}")

    # ---- the event path
    events, sqs, lam = aws["events"], aws["sqs"], aws["lambda"]
    bus = outputs["EventBusName"]
    queue_url = outputs["BoardRequestQueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mappings = lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    check(len(mappings) == 1, f"the stack's BoardRequestQueueUrl has {len(mappings)} event source mappings, not one")
    mapping = mappings[0]
    board_events = next((f for f in functions.values() if f.arn == mapping["FunctionArn"]), None)
    check(board_events is not None and board_events.binary == "board-events",
          f"the queue's mapping invokes {mapping['FunctionArn']}, not the board-events function")
    rules = [r for r in events.list_rules(EventBusName=bus)["Rules"]]
    targets = [t for r in rules for t in events.list_targets_by_rule(Rule=r["Name"], EventBusName=bus)["Targets"]]
    check([t["Arn"] for t in targets] == [queue_arn], f"the bus's rules target {[t['Arn'] for t in targets]}, not only the queue")
    # moto would run the mapping itself, in Docker, as soon as a message
    # lands; the rehearsal turns it off and polls as Lambda does.
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    log(f"events: the stack's rule targets the mapping's queue; moto's own poller is off, the rehearsal polls "
        f"(batch size {mapping['BatchSize']}, {', '.join(mapping.get('FunctionResponseTypes', [])) or 'no partial batch responses'})")

    # Not part of the stack: a rule and a queue that read the outcome back.
    tap = sqs.create_queue(QueueName="rehearsal-outcomes")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    outcome_types = ["Miro Board Created", "Miro Board Creation Failed"]
    events.put_rule(Name="rehearsal-outcomes", EventBusName=bus,
                    EventPattern=json.dumps({"source": ["miro-connect"], "detail-type": outcome_types}))
    events.put_targets(Rule="rehearsal-outcomes", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}])

    detail = {"user_id": USER, "board": {"name": "Rehearsal event board"}, "idempotency_key": "rehearsal-event-1"}
    put = events.put_events(Entries=[{"EventBusName": bus, "Source": TRUSTED_SOURCE, "DetailType": "Create Miro Board",
                                      "Detail": json.dumps(detail)}])
    check(put["FailedEntryCount"] == 0, f"put_events: {put}")
    messages = receive(sqs, queue_url, 5, min(mapping["BatchSize"], 10))
    if messages:
        log(f"events: moto's EventBridge delivered the event through the stack's rule to its queue")
    else:
        log("events: MOTO DID NOT DELIVER the event to the rule's target; the rehearsal sends the EventBridge "
            "envelope to that queue itself")
        envelope = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Create Miro Board", "source": TRUSTED_SOURCE,
                    "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": REGION, "resources": [], "detail": detail}
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
        messages = receive(sqs, queue_url, 5, min(mapping["BatchSize"], 10))
    check(len(messages) == 1, f"the queue holds {len(messages)} messages, not the one request")

    log("events: board-events on the queue's batch")
    reply = board_events.invoke(sqs_event(messages, queue_arn))
    check(reply.get("batchItemFailures") == [], f"board-events reported failures: {reply}")
    sqs.delete_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                          for i, m in enumerate(messages)])
    check("Rehearsal event board" in stats()["board_names"], "the event's board is not at the emulator")

    outcomes = receive(sqs, tap, 5)
    check(len(outcomes) == 1, f"{len(outcomes)} board outcome events on the stack's bus, not one")
    outcome = json.loads(outcomes[0]["Body"])
    check(outcome["detail-type"] == "Miro Board Created" and outcome["source"] == "miro-connect",
          f"the outcome event: {outcome}")
    check(outcome["detail"]["user_id"] == USER and outcome["detail"]["idempotency_key"] == "rehearsal-event-1"
          and outcome["detail"]["name"] == "Rehearsal event board" and outcome["detail"]["board_id"],
          f"the outcome event's detail: {outcome['detail']}")
    log(f"events: outcome 'Miro Board Created' on the stack's bus (board {outcome['detail']['board_id']})")
    check(receive(sqs, queue_url, 1) == [], "the outcome event came back to the request queue")


# ---- putting it together -------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, what: str, process: subprocess.Popen, log_path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise Failure(f"{what} did not come up; its log:\n{log_path.read_text(errors='replace')[-2000:]}")


def main() -> int:
    started_at = time.monotonic()
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(parents=True)
    processes: list = []
    functions: dict = {}
    try:
        moto_port = free_port()
        moto_url = f"http://127.0.0.1:{moto_port}"
        moto_log = STATE / "moto.log"
        moto = subprocess.Popen([sys.executable, str(HERE / "moto_models.py"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=open(moto_log, "wb"), stderr=subprocess.STDOUT)
        processes.append(moto)
        wait_for(f"{moto_url}/moto-api/", "moto", moto, moto_log)
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        aws = {name: session.client(name, endpoint_url=moto_url)
               for name in ("s3", "cloudformation", "lambda", "apigatewayv2", "events", "sqs", "dynamodb", "secretsmanager")}

        client_secret = secrets.token_urlsafe(24)
        values = parameter_values(client_secret)
        template = load_template()
        package(template, aws["s3"], "miro-connect-rehearsal-artifacts")
        body = translate(template, values)
        (STATE / "template.json").write_text(json.dumps(body, indent=1))
        log(f"{TEMPLATE.relative_to(ROOT) if TEMPLATE.is_relative_to(ROOT) else TEMPLATE} translated by aws-sam-translator: {len(body['Resources'])} CloudFormation resources")
        create_stack(aws["cloudformation"], body, template, values)
        created = coverage(aws["cloudformation"], body, moto_cfn_types())
        outputs = {o["OutputKey"]: o["OutputValue"]
                   for o in aws["cloudformation"].describe_stacks(StackName=STACK)["Stacks"][0].get("Outputs", [])}

        emulator_port = free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        emulator_log = STATE / "miro-emulator.log"
        emulator = subprocess.Popen([str(BIN / "miro-emulator"), "--addr", f"127.0.0.1:{emulator_port}",
                                     "--client-id", values["MiroClientId"], "--client-secret", client_secret,
                                     "--redirect-uri", outputs["MiroRedirectUri"]],
                                    stdout=open(emulator_log, "wb"), stderr=subprocess.STDOUT)
        processes.append(emulator)
        wait_for(f"{emulator_url}/_emulator/stats", "the Miro emulator", emulator, emulator_log)

        overrides = {"AWS_ENDPOINT_URL": moto_url, "MIRO_AUTH_BASE_URL": emulator_url, "MIRO_API_BASE_URL": emulator_url}
        values_seen: dict = defaultdict(set)
        log("the stack's functions and the variables moto stored for each:")
        for logical_id, resource in body["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function" or logical_id not in created:
                continue
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            config = aws["lambda"].get_function_configuration(FunctionName=created[logical_id])
            # Lambda's variables are strings (CloudFormation gives a Number
            # parameter's Ref as one); moto keeps such a Ref a number.
            stack_env = {k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()}
            logging_config = dict(resource["Properties"].get("LoggingConfig", {}))
            if isinstance(logging_config.get("LogGroup"), dict):
                logging_config["LogGroup"] = created.get(logging_config["LogGroup"].get("Ref"))
            unresolved = {k: v for k, v in stack_env.items() if "${" in v}
            check(not unresolved, f"{binary}: moto left variables unresolved: {unresolved}")
            log(f"  {binary} ({config['FunctionName']}): {', '.join(sorted(stack_env))}")
            for k, v in stack_env.items():
                values_seen[k].add(v)
            functions[logical_id] = Function(logical_id, binary, config, lambda_environment(config, stack_env, logging_config, overrides))
        for k, vs in sorted(values_seen.items()):
            log(f"    {k}={' | '.join(sorted(vs))}")
        log(f"the functions run with those variables as moto stored them, Lambda's own (AWS_LAMBDA_*, region, "
            f"credentials), and only these changes: {', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))}")
        for f in functions.values():
            f.wait_ready()
        log(f"every function of the stack started: {', '.join(sorted(f.binary for f in functions.values()))}")

        # The environment points at the stack's own resources.
        for f in functions.values():
            env = aws["lambda"].get_function_configuration(FunctionName=f.name)["Environment"]["Variables"]
            check(env["TABLE_NAME"] == created["Table"], f"{f.binary}: TABLE_NAME is not the stack's table")
            aws["dynamodb"].describe_table(TableName=env["TABLE_NAME"])
            if "MIRO_SECRET_ARN" in env:
                check(env["MIRO_SECRET_ARN"] == created["MiroSecret"], f"{f.binary}: MIRO_SECRET_ARN is not the stack's secret")
            if "EVENT_BUS_NAME" in env:
                check(env["EVENT_BUS_NAME"] == outputs["EventBusName"], f"{f.binary}: EVENT_BUS_NAME is not the stack's bus")
        running = {f.binary for f in functions.values()}
        for needed in ("auth-start", "auth-callback", "create-board", "connection", "board-events"):
            check(needed in running, f"the stack has no function running {needed}")

        apis = [physical for lid, physical in created.items() if body["Resources"][lid]["Type"] == "AWS::ApiGatewayV2::Api"]
        check(len(apis) == 1, f"the stack has {len(apis)} HTTP APIs")
        gateway = Gateway(aws["apigatewayv2"], apis[0], list(functions.values()))
        log("routes, as moto stored them: " + "; ".join(gateway.route_table()))

        run_flow(aws, gateway, functions, outputs, emulator_url)
        log(f"passed in {time.monotonic() - started_at:.0f} s: the stack's functions, table, secret, bus, rule and queue "
            f"ran connect -> board -> event")
        return 0
    except Failure as e:
        log(f"FAILED: {e}")
        log(f"logs: {STATE.relative_to(ROOT)}/")
        return 1
    except Exception:  # noqa: BLE001 (any other error fails the rehearsal too, with its trace)
        import traceback

        traceback.print_exc()
        log(f"FAILED (an error above); logs: {STATE.relative_to(ROOT)}/")
        return 1
    finally:
        for f in functions.values():
            f.stop()
        for p in reversed(processes):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


def binaries() -> list:
    """The binaries of the template's functions, in its order."""
    return [r["Metadata"]["BuildProperties"]["Binary"] for r in load_template()["Resources"].values()
            if r["Type"] == "AWS::Serverless::Function"]


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--template"] and len(args) >= 2:
        TEMPLATE = Path(args[1]).resolve()
        args = args[2:]
    if args == ["--binaries"]:
        print("\n".join(binaries()))
        sys.exit(0)
    check(not args, "usage: rehearsal.py [--template PATH] [--binaries]")
    sys.exit(main())
