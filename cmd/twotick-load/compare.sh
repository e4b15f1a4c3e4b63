#!/usr/bin/env bash
# compare.sh runs the twotick-load scenarios idle, chat and offline against
# Prosody, ejabberd and twotick on this machine, one server at a time, each
# pinned to CPU 0 with the load generator on CPU 1, and regenerates
# docs/performance.md with the figures side by side and the plots. The
# contacts scenario (address-book uploads against 1,000,000 accounts) runs
# against twotick only: Prosody and ejabberd have no address-book upload.
#
#   cmd/twotick-load/compare.sh            # full run (tens of minutes)
#   cmd/twotick-load/compare.sh --quick    # small N, short runs (a few minutes)
#   SERVERS="prosody ejabberd" cmd/twotick-load/compare.sh --quick
#   PREVIOUS=/tmp/twotick-bench.XXXXXX SERVERS=twotick cmd/twotick-load/compare.sh
#       # re-runs twotick only and keeps the other servers' results of that run
#
# The idle scenario runs twice per server: with STARTTLS and in plaintext
# (every server here allows plaintext c2s on loopback), since the targets
# differ. docs/perf/analysis.md, written by hand, is appended to the report.
#
# Needs root for apt-get (only when Prosody or ejabberd is missing). Listens
# on 127.0.0.1 only.
set -euo pipefail

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SERVERS=${SERVERS:-"prosody ejabberd twotick"}
WORK=$(mktemp -d /tmp/twotick-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
PLOTS=$ROOT/docs/perf
DOMAIN=localhost
PASSWORD=bench-password
USER_FORMAT='+1202%07d'
USER_START=5550001
SERVER_CPU=0
LOAD_CPU=1

if [ $QUICK = 1 ]; then
	IDLE=200,500,1000; PAIRS=20; RATES="200 1000"; CHAT_DURATION=5s
	OFF_USERS=20; OFF_MESSAGES=50; MAXDUR=3m; OFF_DRAIN=60s
	CONTACTS_POPULATION=20000; CONTACTS_UPLOADS=200
else
	# 4,000 and 10,000 narrow down where each server's p99 passes 20 ms.
	IDLE=5000,10000,19000; PAIRS=100; RATES="1000 2500 4000 5000 7500 10000"; CHAT_DURATION=20s
	# The slowest server here drains about 1,000 offline messages a second.
	OFF_USERS=1000; OFF_MESSAGES=100; MAXDUR=15m; OFF_DRAIN=240s
	CONTACTS_POPULATION=1000000; CONTACTS_UPLOADS=1000
fi
# contacts: a population of US numbers +1202 201 0000 upwards (apart from the
# accounts of the other scenarios, +1202 555 0001 upwards); each of the first
# CONTACTS_UPLOADS accounts uploads a book of 1,000 numbers of which 7% are
# accounts, the rest numbers after the population: offered open loop at
# CONTACTS_RATE a second, and then as fast as CONTACTS_CONCURRENCY uploads in
# flight go.
CONTACTS_START=2010000
CONTACTS_CONCURRENCY=8
CONTACTS_RATE=250
ACCOUNTS=$(( ${IDLE##*,} > 2 * OFF_USERS ? ${IDLE##*,} : 2 * OFF_USERS ))

log() { printf '%s compare: %s\n' "$(date +%T)" "$*" >&2; }

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 100))); do
		if ! ss -ltnH "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "no free port near $1" >&2; exit 1
}

# wait_port waits up to 60 s for a listener on port $1.
wait_port() {
	for _ in $(seq 600); do
		ss -ltnH "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	log "nothing listens on port $1"; return 1
}

install_servers() {
	command -v prosody >/dev/null && command -v ejabberdctl >/dev/null && return
	log "installing prosody and ejabberd from Debian"
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prosody ejabberd
	# The packages start system services where an init system exists.
	service prosody stop 2>/dev/null || true
	service ejabberd stop 2>/dev/null || true
}

# ---------- Prosody

prosody_start() {
	local dir=$WORK/prosody
	rm -rf "$dir"; mkdir -p "$dir/certs"
	cp "$WORK/cert.pem" "$WORK/key.pem" "$dir/"
	PORT=$(free_port 25222)
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$PORT|" -e "s|@DOMAIN@|$DOMAIN|" -e "s|@REQUIRE_TLS@|false|" \
		"$ROOT/cmd/twotick-load/servers/prosody.cfg.lua" >"$dir/prosody.cfg.lua"
	cp -al "$WORK/prosody-accounts" "$dir/data"
	(cd "$dir" && exec taskset -c $SERVER_CPU prosody --config "$dir/prosody.cfg.lua" -F >"$dir/out.log" 2>&1) &
	SERVER_PID=$!
	wait_port "$PORT"
}

prosody_stop() { stop_pid; }

# stop_pid ends the server this script started last, by its process id:
# SIGTERM, then SIGKILL after 30 s (Prosody 0.12 can hang in its shutdown
# after an error in mod_c2s while closing thousands of sessions).
stop_pid() {
	[ -n "${SERVER_PID:-}" ] || return 0
	kill "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		log "pid $SERVER_PID did not stop within 30 s of SIGTERM; killing it"
		kill -9 "$SERVER_PID" 2>/dev/null || true
	fi
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# ---------- ejabberd

EJ_NODE=ejabberdbench$$@localhost
EJ_COOKIE=twotickbench$$

# ejabberdctl run by root switches to the ejabberd user with su, whose PAM
# limits cut the open-file limit to 1024; becoming that user first with
# setpriv keeps the limit of this shell.
EJCTL=(setpriv --reuid ejabberd --regid ejabberd --init-groups ejabberdctl)
ejctl() { "${EJCTL[@]}" --config-dir "$WORK/ejabberd" --ctl-config "$WORK/ejabberd/ejabberdctl.cfg" \
	--spool "$WORK/ejabberd/spool" --logs "$WORK/ejabberd" --node "$EJ_NODE" "$@"; }

ejabberd_start() {
	local dir=$WORK/ejabberd first=0
	if [ ! -d "$dir" ]; then
		first=1; mkdir -p "$dir/spool"
		cp "$WORK/cert.pem" "$WORK/key.pem" "$dir/"
		printf 'ERL_OPTIONS="-setcookie %s"\nERLANG_NODE=%s\n' "$EJ_COOKIE" "$EJ_NODE" >"$dir/ejabberdctl.cfg"
		chown -R ejabberd "$dir"; chmod 755 "$WORK"
	fi
	PORT=$(free_port 25322)
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$PORT|" -e "s|@DOMAIN@|$DOMAIN|" -e "s|@REQUIRE_TLS@|false|" \
		"$ROOT/cmd/twotick-load/servers/ejabberd.yml" >"$dir/ejabberd.yml"
	chown ejabberd "$dir/ejabberd.yml"
	(EJCTL=(taskset -c $SERVER_CPU "${EJCTL[@]}"); ejctl foreground >"$dir/out.log" 2>&1) &
	wait_port "$PORT"
	SERVER_PID=$(pgrep -n -f "beam.smp.*$EJ_NODE")
	taskset -pc $SERVER_CPU "$SERVER_PID" >/dev/null
	if [ $first = 1 ]; then
		log "ejabberd: registering $ACCOUNTS accounts over RPC"
		"$TOOL" accounts --kind ejabberd --out "$dir/accounts.terms" --count "$ACCOUNTS" \
			--user-format "$USER_FORMAT" --user-start $USER_START --password "$PASSWORD" --domain $DOMAIN
		erl -noshell -sname "loader$$" -setcookie "$EJ_COOKIE" -eval "
			{ok, [Scram | Users]} = file:consult(\"$dir/accounts.terms\"),
			N = '$EJ_NODE',
			[ok = rpc:call(N, ejabberd_auth, try_register, [U, H, Scram]) || {U, H} <- Users],
			halt()."
	fi
}

ejabberd_stop() {
	[ -n "${SERVER_PID:-}" ] || return 0
	ejctl stop >/dev/null 2>&1 || true
	for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
	SERVER_PID=
}

# ---------- twotick

twotick_available() {
	(cd "$ROOT" && go build -o "$WORK/twotick" ./cmd/twotick) >/dev/null 2>&1 || return 1
	"$WORK/twotick" serve --help >/dev/null 2>&1 || "$WORK/twotick" help 2>&1 | grep -q serve
}

twotick_start() {
	local dir=$WORK/twotick-data
	rm -rf "$dir"; mkdir -p "$dir"
	PORT=$(free_port 25422); local mport; mport=$(free_port 25522)
	cat >"$dir/twotick.toml" <<TOML
domain = "$DOMAIN"
data_dir = "$dir"
[c2s]
starttls_addr = "127.0.0.1:$PORT"
direct_tls_addr = ""
allow_plaintext_loopback = true
[metrics]
addr = "127.0.0.1:$mport"
[storage]
synchronous = "full"
TOML
	"$TOOL" accounts --kind csv --out "$dir/accounts.csv" --count "$ACCOUNTS" \
		--user-format "$USER_FORMAT" --user-start $USER_START --password "$PASSWORD"
	"$WORK/twotick" user import --config "$dir/twotick.toml" "$dir/accounts.csv" --same-salt >/dev/null
	(exec taskset -c $SERVER_CPU "$WORK/twotick" serve --config "$dir/twotick.toml" >"$dir/out.log" 2>&1) &
	SERVER_PID=$!
	wait_port "$PORT"
}

twotick_stop() { stop_pid; }

# twotick_contacts_start starts twotick with the contacts population
# imported (about 40 s for a million accounts) and waits until the
# address-book index is loaded, which the first uploads would otherwise
# wait for.
twotick_contacts_start() {
	ACCOUNTS_SAVED=$ACCOUNTS; USER_START_SAVED=$USER_START
	ACCOUNTS=$CONTACTS_POPULATION; USER_START=$CONTACTS_START
	twotick_start
	ACCOUNTS=$ACCOUNTS_SAVED; USER_START=$USER_START_SAVED
	for _ in $(seq 1200); do
		grep -q "address-book index loaded" "$WORK/twotick-data/out.log" && return 0
		sleep 0.1
	done
	log "twotick did not log its address-book index as loaded within 120 s"
}

# ---------- runs

# load SERVER SCENARIO PLOTNAME ARGS... runs the load generator on CPU 1.
load() {
	local server=$1 scenario=$2 plot=$3; shift 3
	local cmd=(taskset -c $LOAD_CPU "$TOOL" --scenario "$scenario" --server "$server"
		--addr "127.0.0.1:$PORT" --domain $DOMAIN --user-format "$USER_FORMAT" --user-start $USER_START
		--password "$PASSWORD" --server-pid "$SERVER_PID" --max-duration $MAXDUR
		--json "$RESULTS" --plot "$PLOTS/$plot.png" "$@")
	echo "${cmd[*]}" | sed "s|$TOOL|twotick-load|; s|$PLOTS|docs/perf|; s|$RESULTS|results.jsonl|" >>"$COMMANDS"
	"${cmd[@]}" || log "$server $scenario: the load generator reported an error"
}

run_server() {
	local s=$1
	log "$s: idle $IDLE"
	STOP=${s}_stop
	"${s}_start"; load "$s" idle "idle-$s" --sessions $IDLE --connect-rate 500; "${s}_stop"
	log "$s: idle $IDLE in plaintext"
	"${s}_start"; load "$s" idle "idle-plaintext-$s" --sessions $IDLE --connect-rate 500 --tls=false; "${s}_stop"
	for r in $RATES; do
		log "$s: chat at $r/s"
		"${s}_start"; load "$s" chat "chat-$s-$r" --pairs $PAIRS --rate "$r" --duration $CHAT_DURATION; "${s}_stop"
	done
	log "$s: offline $OFF_USERS×$OFF_MESSAGES"
	"${s}_start"; load "$s" offline "offline-$s" --users $OFF_USERS --messages $OFF_MESSAGES --drain $OFF_DRAIN; "${s}_stop"
	if [ "$s" = twotick ]; then
		log "$s: contacts, $CONTACTS_UPLOADS uploads against $CONTACTS_POPULATION accounts"
		# Open loop at the target rate (its p99 is the one judged), then
		# closed loop with CONTACTS_CONCURRENCY in flight (the rate at
		# saturation), each on a fresh server so that every book is new.
		twotick_contacts_start
		load "$s" contacts "contacts-$s-$CONTACTS_RATE" --user-start $CONTACTS_START --tls=false \
			--population $CONTACTS_POPULATION --uploads $CONTACTS_UPLOADS --book-size 1000 \
			--match-share 0.07 --upload-rate $CONTACTS_RATE
		"${s}_stop"
		log "$s: contacts at saturation, $CONTACTS_CONCURRENCY uploads in flight"
		twotick_contacts_start
		load "$s" contacts "contacts-$s-saturation" --user-start $CONTACTS_START --tls=false \
			--population $CONTACTS_POPULATION --uploads $CONTACTS_UPLOADS --book-size 1000 \
			--match-share 0.07 --concurrency $CONTACTS_CONCURRENCY
		"${s}_stop"
	else
		log "$s: no contacts scenario (no address-book upload)"
	fi
}

machine() {
	echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -sr)"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "prosody: $(dpkg-query -W -f '${Version}' prosody 2>/dev/null)"
	echo "ejabberd: $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null)"
	echo "open files limit: $(ulimit -n)"
	echo "date: $(date -u +%F)"
	echo "load average at the end of the runs (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
}

main() {
	install_servers
	mkdir -p "$PLOTS"
	TOOL=$WORK/twotick-load
	(cd "$ROOT" && go build -o "$TOOL" ./cmd/twotick-load)
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$DOMAIN" \
		-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
	"$TOOL" accounts --kind prosody --out "$WORK/prosody-accounts" --count "$ACCOUNTS" \
		--user-format "$USER_FORMAT" --user-start $USER_START --password "$PASSWORD" --domain $DOMAIN
	trap '"${STOP:-true}"' EXIT
	if [ -n "${PREVIOUS:-}" ]; then
		# Keep the earlier run's results of the servers not run again.
		local s pat=
		for s in $SERVERS; do pat="$pat|\"server\":\"$s\"|--server $s "; done
		grep -Ev "${pat#|}" "$PREVIOUS/results.jsonl" >"$RESULTS" || true
		grep -Ev "${pat#|}" "$PREVIOUS/commands.txt" >"$COMMANDS" || true
	fi

	for s in $SERVERS; do
		if [ "$s" = twotick ] && ! twotick_available; then
			log "twotick: ./cmd/twotick does not build or serve yet; skipped"
			continue
		fi
		run_server "$s"
	done

	local analysis=()
	[ -f "$ROOT/docs/perf/analysis.md" ] && analysis=(--analysis "$ROOT/docs/perf/analysis.md")
	local note="Full run."
	[ $QUICK = 1 ] && note="**Quick run** (compare.sh --quick): small session counts and short runs on a \
shared machine; the figures show that the pipeline works, not what the servers can do. Targets from \
issue 8 are judged only on a full run."
	machine >"$WORK/machine.txt"
	"$TOOL" report --json "$RESULTS" --out "$ROOT/docs/performance.md" --title "twotick performance" \
		--note "$note" --machine "$WORK/machine.txt" --commands "$COMMANDS" "${analysis[@]}"
	log "report written to docs/performance.md; raw results in $RESULTS"
}

main "$@"
