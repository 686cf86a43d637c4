#!/usr/bin/env bash
# make run: starts a local cluster (controller + 3 storage nodes) on the
# embedded default, registers a job, stores and reads a value through the
# CLI, shows the cluster's status, then keeps the cluster up until Ctrl-C.
#
# The cluster runs over mutual TLS, its CA in a temporary data directory,
# when put and get can speak TLS (they take --tls-dir); else over plain TCP
# (--insecure). DEMO_TLS=1 or 0 chooses. POCKET_NODE_PORTS=FIRST-LAST
# keeps the nodes' ports in that range (pocket up --node-ports; default:
# ports the kernel picks).
set -euo pipefail
BIN=${1:-bin/pocket}
ADDR=${POCKET_ADDR:-127.0.0.1:7000}
work=$(mktemp -d)
if [[ -z ${DEMO_TLS:-} ]]; then
	DEMO_TLS=0
	help=$("$BIN" put -h 2>&1 || true)
	[[ $help == *-tls-dir* ]] && DEMO_TLS=1
fi
up_tls=(--data-dir "$work/data") tls=()
ports=()
[[ -z ${POCKET_NODE_PORTS:-} ]] || ports=(--node-ports "$POCKET_NODE_PORTS")
[[ $DEMO_TLS == 1 ]] || up_tls=(--insecure) tls=(--insecure)
# cleanup stops the cluster and removes the data directory (its CA key,
# cluster secret and job token among them) whatever the cluster's exit
# status: under set -e a failing wait (the cluster killed by the same
# signal) ended the trap before the rm, leaving the directory behind.
cleanup() {
	set +e
	if [[ -n ${up_pid:-} ]]; then
		kill "$up_pid" 2>/dev/null
		wait "$up_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" up --listen "$ADDR" --nodes 3 --dram 1GiB "${ports[@]}" "${up_tls[@]}" >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 100); do
	grep -q 'cluster up' "$work/up.log" && break
	if ! kill -0 "$up_pid" 2>/dev/null; then
		cat "$work/up.log"
		if grep -q 'address already in use' "$work/up.log"; then
			echo "make run: $ADDR is taken: run the demo on another address with POCKET_ADDR=HOST:PORT make run" >&2
		fi
		exit 1
	fi
	sleep 0.1
done
export POCKET_CONTROLLER=$ADDR
[[ ${#tls[@]} -gt 0 ]] || export POCKET_TLS_DIR=$work/data/tls
sed -n '/cluster up/,$p' "$work/up.log"
echo
echo "\$ pocket job register demo --json${tls[*]:+ ${tls[*]}}"
"$BIN" job register demo --json "${tls[@]}" | tee "$work/job.json"
job=$(sed -n 's/.*"job_id": "\(.*\)".*/\1/p' "$work/job.json")
POCKET_TOKEN=$(sed -n 's/.*"token": "\(.*\)".*/\1/p' "$work/job.json")
export POCKET_TOKEN
echo "hello from a lambda" >"$work/hello.txt"
echo
echo "\$ pocket put $job greetings/hello hello.txt && pocket get $job greetings/hello"
"$BIN" put "$job" greetings/hello "$work/hello.txt"
"$BIN" get "$job" greetings/hello
echo
echo "\$ pocket status${tls[*]:+ ${tls[*]}}"
sleep 1.2 # one heartbeat, so the status shows the bytes stored
"$BIN" status "${tls[@]}"
echo
echo "The cluster keeps running; in another shell:"
echo "  export POCKET_CONTROLLER=$ADDR POCKET_TOKEN=$POCKET_TOKEN${POCKET_TLS_DIR:+ POCKET_TLS_DIR=$POCKET_TLS_DIR}"
# The binary by its absolute path: the other shell may be anywhere (a
# new user's trial ran bin/pocket from another directory).
echo "  $(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN") ls $job"
echo "Ctrl-C stops it."
wait "$up_pid"
