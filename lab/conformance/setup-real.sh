#!/usr/bin/env bash
# Install and start a REAL Keystone and Neutron from Debian's packages, on loopback only, so the
# conformance test can compare the lab's API with the real thing.
#
#   Keystone  http://127.0.0.1:5000/v3   (uwsgi, one process)
#   Neutron   http://127.0.0.1:9696/v2.0 (neutron-server, ML2 without agents, fake:// RPC)
#   Database  a private PostgreSQL cluster, Unix socket only (no TCP port), in $STATE/pg
#
# Idempotent: a second run starts only what is not running and recreates nothing that exists.
# Everything it starts is stopped by stop-real.sh. Run as root on Debian 12.
#
# Provisions what `runbook lab up` seeds (demo project and user, an application credential, the
# external network `public`, mynetwork/mysubnet, myrouter, the ssh group) and writes
# $STATE/target.json (URLs, demo's password and application credential) for sequence.ts.
# Time on this machine kind: ~2.5 min the first time (~100 s of it apt), ~10 s to restart.
#
# Env: RUNBOOK_CONFORMANCE_DIR (default /var/lib/runbook-conformance).
set -euo pipefail

STATE=${RUNBOOK_CONFORMANCE_DIR:-/var/lib/runbook-conformance}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# Debian's interpreter: the modules come from python3-* packages, not from a pyenv on PATH.
PY=/usr/bin/python3
KEYSTONE_PORT=5000
NEUTRON_PORT=9696
# Fixed, local-only secrets: these services listen on 127.0.0.1 and hold no data of value.
ADMIN_PASSWORD=conformance-admin
DEMO_PASSWORD=conformance-demo
NEUTRON_PASSWORD=conformance-neutron
PACKAGES=(python3-keystone python3-neutron uwsgi-core uwsgi-plugin-python3 python3-psycopg2 postgresql)

log() { printf '[setup-real %5ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root"

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "packages already installed"
    return
  fi
  log "installing ${missing[*]}"
  # Without systemd, maintainer scripts would start the distribution's own PostgreSQL cluster
  # through init scripts; a policy-rc.d that says 101 keeps them from starting any daemon.
  local own_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  {
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confold "${missing[@]}" >"$STATE/log/apt.log" 2>&1
  } || rc=$?
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || { tail -20 "$STATE/log/apt.log" >&2; die "apt-get install failed"; }
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }

start_postgres() {
  local bin
  bin=$(pg_bin)
  if [[ ! -s $STATE/pg/PG_VERSION ]]; then
    log "initdb $STATE/pg"
    rm -rf "$STATE/pg"
    install -d -o postgres -g postgres -m 700 "$STATE/pg"
    runuser -u postgres -- "$bin/initdb" -D "$STATE/pg" -A trust -U postgres -E UTF8 \
      --locale=C.UTF-8 >"$STATE/log/initdb.log" 2>&1
    # No TCP at all: the services reach the database through a socket only root and postgres see.
    cat >>"$STATE/pg/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$STATE/run'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  if runuser -u postgres -- "$bin/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
    log "postgres already running"
  else
    log "starting postgres"
    install -o postgres -g postgres -m 640 /dev/null "$STATE/log/postgres.log"
    runuser -u postgres -- "$bin/pg_ctl" -D "$STATE/pg" -l "$STATE/log/postgres.log" -w -t 60 start >/dev/null
  fi
  for db in keystone neutron; do
    if [[ -z $(psql_q "SELECT 1 FROM pg_database WHERE datname='$db'") ]]; then
      psql_q "CREATE DATABASE $db" >/dev/null
    fi
  done
}

psql_q() { runuser -u postgres -- "$(pg_bin)/psql" -h "$STATE/run" -U postgres -Atqc "$1"; }

db_url() { echo "postgresql+psycopg2://postgres@/$1?host=$STATE/run"; }

write_keystone_conf() {
  mkdir -p "$STATE/etc/keystone"
  cat >"$STATE/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $STATE/log/keystone.log
[database]
connection = $(db_url keystone)
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $STATE/keystone/fernet-keys
[fernet_receipts]
key_repository = $STATE/keystone/fernet-keys
[credential]
key_repository = $STATE/keystone/credential-keys
[cache]
# One uwsgi process, so an in-process cache is coherent; without it every request re-reads
# roles and catalog from the database (~200 queries, ~0.6 s per request on this machine).
enabled = true
backend = dogpile.cache.memory
[identity]
# bcrypt's minimum cost: the default (12) makes every password auth take ~1.5 s on this machine.
password_hash_rounds = 4
EOF
}

keystone_manage() {
  "$PY" -c 'import sys; from keystone.cmd.manage import main; sys.exit(main())' \
    --config-file "$STATE/etc/keystone/keystone.conf" "$@" >>"$STATE/log/keystone-manage.log" 2>&1 ||
    { tail -20 "$STATE/log/keystone-manage.log" >&2; die "keystone-manage $1 failed"; }
}

http_ok() { curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null; }

wait_http() {
  local url=$1 what=$2 tries=${3:-120}
  for ((i = 0; i < tries; i++)); do
    http_ok "$url" && return 0
    sleep 0.5
  done
  die "$what did not answer on $url (see $STATE/log)"
}

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_keystone() {
  write_keystone_conf
  if [[ ! -e $STATE/keystone/.ready ]]; then
    log "keystone db_sync, keys, bootstrap"
    mkdir -p "$STATE/keystone/fernet-keys" "$STATE/keystone/credential-keys"
    keystone_manage db_sync
    keystone_manage fernet_setup --keystone-user root --keystone-group root
    keystone_manage credential_setup --keystone-user root --keystone-group root
    keystone_manage bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
      --bootstrap-admin-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
      --bootstrap-internal-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
      --bootstrap-public-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
      --bootstrap-region-id RegionOne
    touch "$STATE/keystone/.ready"
  fi
  if running "$STATE/run/keystone.pid"; then
    log "keystone already running"
  else
    http_ok "http://127.0.0.1:$KEYSTONE_PORT/v3" && die "port $KEYSTONE_PORT is taken by another process"
    log "starting keystone (uwsgi) on 127.0.0.1:$KEYSTONE_PORT"
    # Its own session (setsid), as neutron-server, so stop-real.sh ends master and workers together.
    # http-socket closes the connection after each response without saying so; clients that keep
    # connections alive (keystonemiddleware in neutron-server) then fail on the reused socket.
    OS_KEYSTONE_CONFIG_FILES="$STATE/etc/keystone/keystone.conf" \
      setsid uwsgi --plugin python3 --http-socket "127.0.0.1:$KEYSTONE_PORT" \
      --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 1 --threads 4 \
      --lazy-apps --die-on-term --buffer-size 65535 --need-app \
      --add-header 'Connection: close' \
      --logto "$STATE/log/keystone-uwsgi.log" </dev/null >/dev/null 2>&1 &
    echo $! >"$STATE/run/keystone.pid"
  fi
  wait_http "http://127.0.0.1:$KEYSTONE_PORT/v3" keystone
}

write_neutron_conf() {
  mkdir -p "$STATE/etc/neutron" "$STATE/neutron/lock"
  cat >"$STATE/etc/neutron/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
# In-process oslo.messaging driver: no broker, and no agent will ever call in.
transport_url = fake://
api_workers = 0
rpc_workers = 1
rpc_state_report_workers = 0
api_paste_config = $STATE/etc/neutron/api-paste.ini
state_path = $STATE/neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
allow_overlapping_ips = true
log_file = $STATE/log/neutron-server.log
[database]
connection = $(db_url neutron)
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KEYSTONE_PORT
auth_url = http://127.0.0.1:$KEYSTONE_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $NEUTRON_PASSWORD
[oslo_concurrency]
lock_path = $STATE/neutron/lock
[oslo_messaging_notifications]
driver = noop
[agent]
report_interval = 0
EOF
  # ML2 with the openvswitch mechanism driver but no agent: ports stay DOWN, which is all the
  # API needs; a port is bound only to a host with a live agent (setup-real-nova.sh registers a
  # stand-in row for its compute host). flat for the external network, vxlan for project networks.
  cat >"$STATE/etc/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
  # Neutron's stock api-paste.ini (python3-neutron does not ship one outside its tests).
  cat >"$STATE/etc/neutron/api-paste.ini" <<'EOF'
[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions_composite
/v2.0: neutronapi_v2_0

[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi request_id catch_errors extensions neutronapiapp_v2_0
keystone = cors http_proxy_to_wsgi request_id catch_errors authtoken keystonecontext extensions neutronapiapp_v2_0

[composite:neutronversions_composite]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi neutronversions
keystone = cors http_proxy_to_wsgi neutronversions

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:catch_errors]
paste.filter_factory = oslo_middleware:CatchErrors.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = neutron

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory

[app:neutronversions]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory

[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory
EOF
}

neutron_args=()
migrate_pid=

# Neutron's schema migration needs only the database, so it runs while Keystone is set up.
migrate_neutron() {
  write_neutron_conf
  neutron_args=(--config-file "$STATE/etc/neutron/neutron.conf" --config-file "$STATE/etc/neutron/ml2_conf.ini")
  [[ -e $STATE/neutron/.ready ]] && return
  log "neutron-db-manage upgrade heads (in the background)"
  "$PY" -c 'import sys; from neutron.db.migration.cli import main; sys.exit(main())' \
    "${neutron_args[@]}" upgrade heads >"$STATE/log/neutron-db-manage.log" 2>&1 &
  migrate_pid=$!
}

start_neutron() {
  if [[ -n $migrate_pid ]]; then
    wait "$migrate_pid" || { tail -20 "$STATE/log/neutron-db-manage.log" >&2; die "neutron-db-manage failed"; }
    touch "$STATE/neutron/.ready"
  fi
  if running "$STATE/run/neutron.pid"; then
    log "neutron already running"
  else
    http_ok "http://127.0.0.1:$NEUTRON_PORT/" && die "port $NEUTRON_PORT is taken by another process"
    log "starting neutron-server on 127.0.0.1:$NEUTRON_PORT"
    # Its own session (setsid) so stop-real.sh can end the parent and its forked workers together.
    setsid "$PY" -c 'import sys; from neutron.cmd.eventlet.server import main; sys.exit(main())' \
      "${neutron_args[@]}" </dev/null >>"$STATE/log/neutron-server.out" 2>&1 &
    echo $! >"$STATE/run/neutron.pid"
  fi
  wait_http "http://127.0.0.1:$NEUTRON_PORT/" neutron 240
}

main() {
  local t0=$SECONDS
  mkdir -p "$STATE/log" "$STATE/keystone"
  install -d -o postgres -g postgres -m 750 "$STATE/run"
  install_packages
  start_postgres
  migrate_neutron
  start_keystone
  log "provisioning identity"
  node --import tsx "$HERE/provision-real.ts" identity "$STATE" >>"$STATE/log/provision.log"
  start_neutron
  log "provisioning networks"
  node --import tsx "$HERE/provision-real.ts" network "$STATE" >>"$STATE/log/provision.log"
  log "ready in $((SECONDS - t0)) s: keystone http://127.0.0.1:$KEYSTONE_PORT/v3, neutron http://127.0.0.1:$NEUTRON_PORT/v2.0; target $STATE/target.json"
}

cd "$REPO"
main "$@"
