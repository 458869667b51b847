#!/bin/bash
# leakcheck.sh BIN_DIR: runs yard-broker, two yard-workers and yard-health under
# valgrind memcheck through a workload (2000 echo tasks, a timeout with a
# worker-side cancel, a task for a service nobody serves, hostile raw
# frames, stats), stops them with SIGTERM and fails unless every process
# exits 0 with no memcheck error and no leaked byte. Bounded: every step
# has a timeout, and everything started is stopped by PID on exit.
set -u
BIN=$(cd "${1:-build/bin}" && pwd)
WORK=$(mktemp -d /tmp/yard-leakcheck.XXXXXX)
PIDS=()
PY=/usr/bin/python3

cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "leakcheck: $*" >&2
    for f in "$WORK"/*.vg; do echo "--- $f" >&2; tail -30 "$f" >&2; done
    exit 1
}
free_port() {
    $PY "$(dirname "$0")/free-port.py"
}
VG=(valgrind --leak-check=full --show-leak-kinds=all
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99)

export YARD_BROKER="tcp://127.0.0.1:$(free_port)"
export YARD_EVENTS="tcp://127.0.0.1:$(free_port)"
export YARD_LOG_LEVEL=warn

"${VG[@]}" --log-file="$WORK/broker.vg" "$BIN/yard-broker" --grace 2000 &
BP=$!; PIDS+=("$BP")
for _ in $(seq 150); do
    timeout 5 "$BIN/yard" stats --json --timeout 500 >/dev/null 2>&1 && break
    sleep 0.2
done
timeout 5 "$BIN/yard" stats --json >/dev/null || fail "broker did not come up"

"${VG[@]}" --log-file="$WORK/echo.vg" "$BIN/yard-worker" --handler echo \
    --capacity 4 --threads 2 &
W1=$!; PIDS+=("$W1")
"${VG[@]}" --log-file="$WORK/sleep.vg" "$BIN/yard-worker" --service s \
    --handler sleep --capacity 2 &
W2=$!; PIDS+=("$W2")
for _ in $(seq 150); do
    timeout 5 "$BIN/yard" stats --json 2>/dev/null | $PY -c \
        'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["total"]["workers"] == 2 else 1)' \
        2>/dev/null && break
    sleep 0.2
done

HTTP_PORT=$(free_port)
HURL="http://127.0.0.1:$HTTP_PORT"
YARD_API_KEY=k "${VG[@]}" --log-file="$WORK/health.vg" "$BIN/yard-health" \
    --http "127.0.0.1:$HTTP_PORT" --interval-ms 200 &
HP=$!; PIDS+=("$HP")
for _ in $(seq 150); do
    curl -s -o /dev/null --max-time 2 "$HURL/v1/health" && break
    sleep 0.2
done
curl -s -N --max-time 4 -H 'X-API-Key: k' "$HURL/v1/events/stream?type=task." \
    >"$WORK/sse.txt" &
SSE=$!

n=$(seq 2000 | timeout 120 "$BIN/yard" batch echo | grep -c '"status":"ok"')
[ "$n" = 2000 ] || fail "expected 2000 ok results, got $n"
printf '100\n3000\n' | timeout 30 "$BIN/yard" batch --timeout 500 s >/dev/null
[ $? = 1 ] || fail "the 3000 ms task should have timed out"
timeout 10 "$BIN/yard" submit --timeout 300 nobody x 2>/dev/null
[ $? = 3 ] || fail "a task for a service without workers should time out"
timeout 10 $PY - <<EOF || fail "raw frames"
import time, zmq
s = zmq.Context().socket(zmq.DEALER)
s.connect("$YARD_BROKER")
s.send_multipart([b"Y", b"junk"])
s.send_multipart([b"YC\x01\x01", b"\xdd\xff\x00\x00\x00"])
s.send_multipart([b"YW\x01\x02", b"\x81\xa3job\x01"])
assert s.poll(5000), "no reply to hostile frames"
time.sleep(0.3)
s.close(0)
EOF
timeout 10 "$BIN/yard" stats >/dev/null || fail "broker stopped answering"
for path in /v1/health /v1/workers /v1/metrics/performance /metrics \
    /v1/breakers /v1/breakers/echo /nope; do
    curl -s -o /dev/null --max-time 5 -H 'X-API-Key: k' "$HURL$path" ||
        fail "yard-health did not answer $path"
done
curl -s -o /dev/null --max-time 5 -X POST -H 'X-API-Key: k' \
    "$HURL/v1/breakers/echo/reset" || fail "breaker reset"
curl -s -o /dev/null --max-time 5 "$HURL/v1/workers" || fail "401 path"
wait "$SSE"
grep -q '^event: task.completed' "$WORK/sse.txt" || fail "no task events on SSE"
kill -TERM "$HP"
wait "$HP"; rh=$?
[ "$rh" = 0 ] || fail "yard-health exit code $rh (99 = memcheck error)"

kill -TERM "$W1" "$W2"
wait "$W1"; r1=$?
wait "$W2"; r2=$?
kill -TERM "$BP"
wait "$BP"; rb=$?
PIDS=()
[ "$r1$r2$rb" = 000 ] || fail "exit codes: echo $r1, sleep $r2, broker $rb (99 = memcheck error)"
for f in "$WORK"/*.vg; do
    grep -q "All heap blocks were freed" "$f" || fail "$(basename "$f"): memory left at exit"
done
echo "leakcheck: broker, 2 workers and yard-health: 0 errors, all heap blocks freed"
