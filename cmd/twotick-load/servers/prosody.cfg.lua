-- Prosody configuration for twotick-load benchmarks. compare.sh replaces
-- @DIR@, @PORT@, @DOMAIN@ and @REQUIRE_TLS@ and runs Prosody in the
-- foreground on loopback. Features match the other servers under test:
-- stream management, offline storage, no rate limits or traffic shaping.
run_as_root = true
daemonize = false
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { warn = "@DIR@/prosody.log" }
network_backend = "epoll"
-- Prosody leaves Nagle's algorithm on by default; together with the
-- client's delayed ACKs it holds each connection to about 25 writes a
-- second, which would measure the kernel rather than Prosody.
network_settings = { nagle = false }

c2s_ports = { @PORT@ }
c2s_interfaces = { "127.0.0.1" }
c2s_require_encryption = @REQUIRE_TLS@
allow_unencrypted_plain_auth = false
-- No mod_limits: no per-connection read rate limits.
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "smacks"; "offline"; "posix";
}
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
-- Hibernated sessions would keep memory between scenarios.
smacks_hibernation_time = 60
ssl = { key = "@DIR@/key.pem"; certificate = "@DIR@/cert.pem" }

VirtualHost "@DOMAIN@"
