#!/usr/bin/env bash
# `make cluster`: a multi-replica deployment on loopback to watch it work (docs/deploy.md). It starts
# PostgreSQL (initdb in a temporary directory), Redis, the sandbox's simulators and three gateway
# replicas, each with --workers, sharing the PostgreSQL store ([store] url) and Redis rate limits
# ([rate_limits] url); it prints how to call each replica and stops everything on Ctrl-C.
#
# A gateway build without the PostgreSQL store or the Redis limits, or a machine without their
# servers, falls back, saying so: SQLite on this machine (one file the replicas share), limits in
# each process's memory.
#
# Environment: CLUSTER_REPLICAS (3), CLUSTER_WORKERS (worker processes per replica, 2), CLUSTER_PORT
# (the first replica's port, 50061; the others follow), CLUSTER_CALLBACK (the sandbox's callback page,
# 127.0.0.1:8766), PYTHON (the gateway's interpreter, .venv/bin/python).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
gateway=("$python" -m broker_gateway.cli)
replicas=${CLUSTER_REPLICAS:-3}
workers=${CLUSTER_WORKERS:-2}
first_port=${CLUSTER_PORT:-50061}
callback=${CLUSTER_CALLBACK:-127.0.0.1:8766}
work=$(mktemp -d "${TMPDIR:-/tmp}/broker-gateway-cluster.XXXXXX")
chmod 755 "$work"  # PostgreSQL's user (when this runs as root) must reach its directory inside
pids=()
pg_ctl=()
store_url=""
redis_url=""

say() { printf '%s\n' "$*"; }

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Whether this gateway build has a configuration field: `store_url` comes with the PostgreSQL store,
# `rate_limits` with the Redis limits.
has_config_field() {
  "$python" -c "import dataclasses, sys; from broker_gateway.config import Config; sys.exit('$1' not in {f.name for f in dataclasses.fields(Config)})"
}

wait_for() {  # wait_for WHAT COMMAND...: poll COMMAND for up to 60 s
  local what=$1
  shift
  for _ in $(seq 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  say "cluster: timed out waiting for $what (logs in $work)" >&2
  return 1
}

stop_all() {
  local status=$?
  trap - EXIT INT TERM
  say "cluster: stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((${#pg_ctl[@]})); then "${pg_ctl[@]}" -m fast stop >/dev/null 2>&1 || true; fi
  if ((status == 0)); then rm -rf "$work"; else say "cluster: logs kept in $work" >&2; fi
}
trap stop_all EXIT
trap 'exit 0' INT TERM

start_postgres() {
  local initdb port as=()
  initdb=$(readlink -f "$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)" || true)
  if [ -z "$initdb" ]; then
    say "cluster: PostgreSQL is not installed (Debian: apt-get install postgresql): falling back to SQLite"
    return
  fi
  if ! has_config_field store_url; then
    say "cluster: this gateway build has no PostgreSQL store ([store] url): falling back to SQLite"
    return
  fi
  mkdir "$work/postgres"
  if [ "$(id -u)" = 0 ]; then  # initdb and postgres refuse root
    local owner=postgres
    id "$owner" >/dev/null 2>&1 || owner=nobody
    chown "$owner" "$work/postgres"
    as=(runuser -u "$owner" --)
  fi
  port=$(free_port)
  "${as[@]}" "$initdb" -D "$work/postgres/data" -U gateway --auth=trust -E UTF8 --no-sync >"$work/postgres/initdb.log"
  pg_ctl=("${as[@]}" "$(dirname "$initdb")/pg_ctl" -D "$work/postgres/data" -l "$work/postgres/server.log" -w -t 60)
  "${pg_ctl[@]}" -o "-p $port -c listen_addresses=127.0.0.1 -k $work/postgres" start >/dev/null
  "${as[@]}" "$(dirname "$initdb")/createdb" -h 127.0.0.1 -p "$port" -U gateway gateway
  store_url="postgresql://gateway@127.0.0.1:$port/gateway"
  say "cluster: PostgreSQL on 127.0.0.1:$port"
}

redis_answers() {
  "$python" -c "import socket, sys; s = socket.create_connection(('127.0.0.1', $1), 1); s.sendall(b'PING\r\n'); sys.exit(not s.recv(64).startswith(b'+PONG'))"
}

start_redis() {
  local port
  if ! command -v redis-server >/dev/null; then
    say "cluster: redis-server is not installed (Debian: apt-get install redis-server): rate limits stay per process"
    return
  fi
  if ! has_config_field rate_limits; then
    say "cluster: this gateway build has no shared rate limits ([rate_limits] url): rate limits stay per process"
    return
  fi
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_for "Redis" redis_answers "$port"
  redis_url="redis://127.0.0.1:$port/0"
  say "cluster: Redis on 127.0.0.1:$port"
}

start_simulators() {
  "${gateway[@]}" sandbox --simulators-only --write-config "$work/gateway.toml" --data-dir "$work/sandbox" \
    --listen "127.0.0.1:$first_port" --callback-listen "$callback" >"$work/simulators.log" 2>&1 &
  pids+=($!)
  wait_for "the simulators" test -s "$work/sandbox/sandbox.json"
  {
    echo
    echo "[store]"
    if [ -n "$store_url" ]; then echo "url = \"$store_url\""; else echo "path = \"$work/gateway.db\""; fi
    if [ -n "$redis_url" ]; then printf '\n[rate_limits]\nurl = "%s"\n' "$redis_url"; fi
  } >>"$work/gateway.toml"
  if [ -n "$store_url" ]; then "${gateway[@]}" migrate --config "$work/gateway.toml"; fi
}

serving() {
  "$python" -c "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g
with grpc.insecure_channel('$1') as channel:
    sys.exit(g.HealthStub(channel).Check(h.HealthCheckRequest(), timeout=1).status != h.HealthCheckResponse.SERVING)"
}

start_replicas() {
  local index address
  for index in $(seq "$replicas"); do
    address=127.0.0.1:$((first_port + index - 1))
    "${gateway[@]}" serve --config "$work/gateway.toml" --listen "$address" --workers "$workers" >"$work/replica-$index.log" 2>&1 &
    pids+=($!)
  done
  for index in $(seq "$replicas"); do
    wait_for "replica $index" serving "127.0.0.1:$((first_port + index - 1))"
  done
}

instructions() {
  local redirect_uri providers index
  redirect_uri=$("$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['redirect_uri'])" "$work/sandbox/sandbox.json")
  providers=$("$python" -c "import json, sys; print(', '.join(json.load(open(sys.argv[1]))['upstreams']))" "$work/sandbox/sandbox.json")
  say ""
  say "BrokerGateway cluster: $replicas replicas with $workers workers each, on ports $first_port..$((first_port + replicas - 1))."
  say "  store:       ${store_url:-SQLite, $work/gateway.db (one machine only)}"
  say "  rate limits: ${redis_url:-in each process's memory (not shared: each process allows a provider's whole limit)}"
  say "  providers:   $providers (the sandbox's simulators; configuration in $work/gateway.toml)"
  say "  logs:        $work/*.log"
  say ""
  say "Call any replica; an authorization started on one completes on any other:"
  for index in $(seq "$replicas"); do
    say "  grpcurl -plaintext -d '{\"provider\": \"wallet\", \"redirect_uri\": \"$redirect_uri\"}' 127.0.0.1:$((first_port + index - 1)) broker_gateway.v1.BrokerGateway/Authorize"
  done
  say "Open the authorization_url and approve (or append &approve=alice to it); the page at $redirect_uri"
  say "shows the Exchange command (for replica 1: change the port to try another)."
  say ""
  say "Stop with Ctrl-C."
}

start_postgres
start_redis
start_simulators
start_replicas
instructions
wait -n "${pids[@]}"
say "cluster: a process exited on its own" >&2
exit 1
