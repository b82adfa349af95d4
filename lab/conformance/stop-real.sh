#!/usr/bin/env bash
# Stop everything setup-real.sh and setup-real-nova.sh started: the Nova layer (nova-api, -compute,
# -scheduler, -conductor, glance-api, placement's uwsgi, RabbitMQ and its epmd), neutron-server (and
# its workers), keystone's uwsgi, and the private PostgreSQL cluster. Data stays in $STATE, so the next setup-real.sh starts fast.
# Exits non-zero if one of those processes is still running afterwards.
# Env: RUNBOOK_CONFORMANCE_DIR (default /var/lib/runbook-conformance).
set -uo pipefail
STATE=${RUNBOOK_CONFORMANCE_DIR:-/var/lib/runbook-conformance}
[[ -d $STATE ]] || exit 0

log() { printf '[stop-real] %s\n' "$*" >&2; }

# TERM to the process group setup-real.sh started with setsid, a wait, then KILL what is left.
stop_group() {
  local name=$1 pidfile=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name ($pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# The Nova layer (setup-real-nova.sh) first: its daemons call Keystone and Neutron while stopping.
for name in nova-api nova-compute nova-scheduler nova-conductor glance-api placement rabbit epmd; do
  stop_group "$name" "$STATE/run/$name.pid"
done
stop_group neutron-server "$STATE/run/neutron.pid"
stop_group keystone "$STATE/run/keystone.pid"

if [[ -s $STATE/pg/postmaster.pid ]]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  log "stopping postgres"
  runuser -u postgres -- "$bin/pg_ctl" -D "$STATE/pg" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    { pid=$(head -1 "$STATE/pg/postmaster.pid"); kill -KILL "$pid" 2>/dev/null; }
fi

# Anything still running from this state dir (a setup that died before writing its pid file)?
# The patterns are anchored on the programs setup-real.sh starts, so a shell whose command line
# merely mentions the state dir is never matched.
st=$(printf '%s' "$STATE" | sed 's/[][\.^$*+?(){}|]/\\&/g')
ours="^(/usr/bin/python3 -c .* $st/etc/|neutron-server: .* $st/etc/|(nova|glance)-[a-z]+: .* $st/etc/|uwsgi .*--logto $st/log/|/usr/lib/postgresql/[0-9]+/bin/postgres -D $st/pg|/usr/lib/erlang/erts-[^ ]*/bin/beam.smp .*$st/|epmd -address 127.0.0.1 -port 14369)"
left=$(pgrep -f -- "$ours" || true)
if [[ -n $left ]]; then
  log "stopping leftovers: $(echo $left)"
  kill -TERM $left 2>/dev/null
  sleep 2
  left=$(pgrep -f -- "$ours" || true)
  [[ -n $left ]] && kill -KILL $left 2>/dev/null
  sleep 0.5
fi
if pgrep -f -- "$ours" >/dev/null; then
  log "ERROR: still running: $(pgrep -af -- "$ours")"
  exit 1
fi
exit 0
