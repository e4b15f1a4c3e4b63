#!/usr/bin/env bash
# contacts-runs.sh repeats the contacts scenario of compare.sh against
# twotick alone, as the runs by hand in docs/contacts.md were made: it
# imports 1,000,000 accounts once, then for each run starts a fresh server
# (pinned to CPU 0) on a copy of that database, offers the uploads from
# CPU 1, prints the figures and stops the server.
#
#   cmd/twotick-load/contacts-runs.sh 1000 1000 3000     # open loop at 250/s
#   RATE=0 cmd/twotick-load/contacts-runs.sh 1000        # 8 in flight instead
#
# Each argument is one run's number of uploads (each a new book of 1,000
# numbers, 7% of them accounts). WORK=DIR keeps the built binaries and the
# imported database between invocations.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/twotick-contacts-runs}
RATE=${RATE:-250}
POPULATION=1000000
START=2010000
FORMAT='+1202%07d'
PASSWORD=bench-password
PORT=25622
MPORT=25623

[ $# -gt 0 ] || { echo "usage: $0 UPLOADS..." >&2; exit 2; }
mkdir -p "$WORK"
(cd "$ROOT" && go build -o "$WORK/twotick" ./cmd/twotick && go build -o "$WORK/twotick-load" ./cmd/twotick-load)

# config DIR writes the configuration of a server whose data is in DIR.
config() {
	cat >"$1/twotick.toml" <<TOML
domain = "localhost"
data_dir = "$1"
[c2s]
starttls_addr = "127.0.0.1:$PORT"
direct_tls_addr = ""
allow_plaintext_loopback = true
[metrics]
addr = "127.0.0.1:$MPORT"
[storage]
synchronous = "full"
TOML
}

TEMPLATE=$WORK/template
if [ ! -f "$TEMPLATE/twotick.db" ]; then
	mkdir -p "$TEMPLATE"
	config "$TEMPLATE"
	"$WORK/twotick-load" accounts --kind csv --out "$WORK/accounts.csv" --count $POPULATION \
		--user-format "$FORMAT" --user-start $START --password $PASSWORD
	"$WORK/twotick" user import --config "$TEMPLATE/twotick.toml" "$WORK/accounts.csv" \
		--same-salt >/dev/null
fi

for uploads in "$@"; do
	run=$WORK/run
	rm -rf "$run" && mkdir -p "$run"
	cp "$TEMPLATE"/twotick.db* "$run/"
	config "$run"
	(exec taskset -c 0 "$WORK/twotick" serve --config "$run/twotick.toml" >"$run/out.log" 2>&1) &
	pid=$!
	for _ in $(seq 1200); do
		grep -q "address-book index loaded" "$run/out.log" 2>/dev/null && break
		sleep 0.1
	done
	if [ "$RATE" = 0 ]; then pace=(--concurrency 8); else pace=(--upload-rate "$RATE"); fi
	echo "== $uploads uploads, ${pace[*]}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	taskset -c 1 "$WORK/twotick-load" --scenario contacts --addr 127.0.0.1:$PORT \
		--domain localhost --user-format "$FORMAT" --user-start $START --password $PASSWORD \
		--tls=false --population $POPULATION --uploads "$uploads" --book-size 1000 \
		--match-share 0.07 --server-pid $pid "${pace[@]}" |
		grep -E 'uploads_(ok|failed|mismatched|per_s)|cpu_ms|upload_p(50|99|999)_ms' || true
	kill $pid
	wait $pid || true
done
