#!/bin/bash
# make demo: a broker, an event subscriber, two workers, a redis-server and
# a yard-cache on loopback; a workload showing a success, a batch, a
# timeout, a retry after a worker is killed with -9, a cache set / get /
# invalidate, a ping of every worker and yard-health's admin API, the
# events it caused, then the broker's metrics. Stops
# everything it started, by PID.
set -u
BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)
WORK=$(mktemp -d /tmp/yard-demo.XXXXXX)
PIDS=()

free_port() {
    /usr/bin/python3 "$(dirname "$0")/free-port.py"
}
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# stats_has EXPR: true when the broker's stats JSON (as "s") satisfies
# the Python expression EXPR.
stats_has() {
    "$BIN/yard" stats --json 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" 2>/dev/null
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export YARD_BROKER="tcp://127.0.0.1:$(free_port)"
export YARD_EVENTS="tcp://127.0.0.1:$(free_port)"
export YARD_LOG_LEVEL=warn

say "starting yard-broker on $YARD_BROKER"
"$BIN/yard-broker" --grace 2000 2>"$WORK/broker.log" &
PIDS+=($!)
# Ready when it answers the admin service (bounded: 10 s).
for _ in $(seq 100); do
    "$BIN/yard" stats --json >/dev/null 2>&1 && break
    sleep 0.1
done
"$BIN/yard" stats --json >/dev/null || { echo "broker did not come up"; cat "$WORK/broker.log"; exit 1; }

say "subscribing to worker.* and task.timeout events (yard subscribe, in the background)"
"$BIN/yard" subscribe --timeout 60000 worker. task.timeout >"$WORK/events.jsonl" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 100); do
    stats_has 's["events"]["subscribers"] == 1' && break
    sleep 0.1
done

say "starting two workers of service 'work' (handler sleep, capacity 2 each)"
"$BIN/yard-worker" --service work --handler sleep --capacity 2 --name worker-a 2>"$WORK/worker-a.log" &
WA=$!; PIDS+=($WA)
"$BIN/yard-worker" --service work --handler sleep --capacity 2 --name worker-b 2>"$WORK/worker-b.log" &
WB=$!; PIDS+=($WB)
for _ in $(seq 100); do
    stats_has 's["services"].get("work", {}).get("workers") == 2' && break
    sleep 0.1
done

say "success: yard submit work 100   (sleeps 100 ms, echoes the payload)"
"$BIN/yard" submit work 100; echo "exit status $?"

say "a batch of 6 tasks: printf '50\n...' | yard batch work"
printf '50\n60\n70\n80\n90\n100\n' | "$BIN/yard" batch work; echo "exit status $?"

say "a timeout: yard submit --timeout 300 work 2000"
"$BIN/yard" submit --timeout 300 work 2000; echo "exit status $? (3 = timeout)"

say "a retry after a worker dies: 4 tasks of 1500 ms, then kill -9 worker-a"
printf '1500\n1500\n1500\n1500\n' | "$BIN/yard" batch --timeout 20000 work >"$WORK/batch.out" &
BATCH=$!
# Wait until worker-a holds tasks (bounded), then kill it.
for _ in $(seq 100); do
    stats_has 'any(w["name"] == "worker-a" and w["in_flight"] > 0 for w in s["workers"])' && break
    sleep 0.05
done
{ kill -KILL "$WA"; wait "$WA"; } 2>/dev/null; echo "killed worker-a (pid $WA); the broker notices within 3 s and re-dispatches"
wait "$BATCH"; echo "batch exit status $?"
cat "$WORK/batch.out"
echo "(attempts 2 = ran again on worker-b after worker-a was lost)"

if [ -x /usr/bin/redis-server ] && [ -x "$BIN/yard-cache" ]; then
    say "the cache: redis-server, yard-cache, then yard cache set / get"
    RPORT=$(free_port)
    /usr/bin/redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break
        sleep 0.05
    done
    "$BIN/yard-cache" --redis "redis://127.0.0.1:$RPORT/0" 2>"$WORK/cache.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        stats_has 's["services"].get("yard.cache", {}).get("workers") == 1' && break
        sleep 0.1
    done
    "$BIN/yard" cache set --ttl 60000 --tag demo greeting 'hello from the cache'
    printf 'yard cache get greeting: '; "$BIN/yard" cache get greeting; echo
    "$BIN/yard" cache invalidate-tag demo
    "$BIN/yard" cache get greeting; echo "exit status $? (1 = miss)"
fi

if [ -x "$BIN/yard-health" ] && command -v curl >/dev/null; then
    say "health: yard ping, then yard-health's admin API (curl)"
    "$BIN/yard" ping
    HPORT=$(free_port)
    "$BIN/yard-health" --http "127.0.0.1:$HPORT" --interval-ms 500 2>"$WORK/health.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$HPORT/v1/health" >/dev/null && break
        sleep 0.1
    done
    echo "GET /v1/health:"
    curl -s "http://127.0.0.1:$HPORT/v1/health" | /usr/bin/python3 -m json.tool | head -20
    echo "GET /metrics (the per-process families):"
    curl -s "http://127.0.0.1:$HPORT/metrics" | grep -E '^yard_process_(up|resident_memory_bytes)[{]' | head -8
fi

say "events seen by the subscriber"
cut -c1-160 "$WORK/events.jsonl"

say "metrics: yard stats"
"$BIN/yard" stats

say "stopping everything"
