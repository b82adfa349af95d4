#!/usr/bin/env bash
# Install and start a REAL Nova 26 (Zed) with the fake.FakeDriver compute driver, Placement 8 and
# Glance 25 from Debian's packages, on top of the Keystone and Neutron that setup-real.sh starts
# (run that first), on loopback only, so the server and keypair modules are judged by a real Nova.
#
#   Nova       http://127.0.0.1:18774/v2.1 (nova-api on eventlet, conductor, scheduler, compute)
#   Placement  http://127.0.0.1:18778      (uwsgi, one process)
#   Glance     http://127.0.0.1:19292      (eventlet, one process, file store in $STATE/glance)
#   RabbitMQ   127.0.0.1:25672 (AMQP), its own epmd on 127.0.0.1:14369: Nova's RPC crosses processes
#
# Two steps are not obvious (measured, see docs/lab.md "A real Nova"):
# - Zed's nova-api always sends its own token as X-Service-Token to Neutron; Zed's bootstrap makes
#   no `service` role, so provision-real.ts makes it and gives it to every service user.
# - ML2/openvswitch binds a port only to a host with a live Open vSwitch agent: one row in
#   Neutron's `agents` table (heartbeat in 2099) stands for it; no agent runs. Ports stay DOWN.
#
# Idempotent: a second run starts only what is not running and recreates nothing that exists.
# stop-real.sh stops everything this starts. Run as root on Debian 12.
# Time on this machine kind (measured, packages installed): 69 s the first time (42 s of it the
# migrations), 20-33 s to restart (mostly nova-compute's first report), 10 s when all runs;
# about 0.9 GiB more memory (PSS, measured when the recipe was made).
# Env: RUNBOOK_CONFORMANCE_DIR (default /var/lib/runbook-conformance).
set -euo pipefail

STATE=${RUNBOOK_CONFORMANCE_DIR:-/var/lib/runbook-conformance}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
KEYSTONE=http://127.0.0.1:5000
NOVA_PORT=18774
PLACEMENT_PORT=18778
GLANCE_PORT=19292
AMQP_PORT=25672
DIST_PORT=25673
EPMD_PORT=14369
COMPUTE_HOST=osr-compute
# Fixed, local-only secrets (provision-real.ts uses the same): loopback services holding nothing.
RABBIT_PASSWORD=conformance-rabbit
PACKAGES=(python3-nova python3-placement python3-glance rabbitmq-server)

log() { printf '[setup-real-nova %5ss] %s\n' "$SECONDS" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

[[ $(id -u) == 0 ]] || die "run as root"
[[ -s $STATE/run/keystone.pid && -s $STATE/run/neutron.pid ]] || die "run setup-real.sh first"

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
      -o Dpkg::Options::=--force-confold "${missing[@]}" >"$STATE/log/apt-nova.log" 2>&1
  } || rc=$?
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || {
    tail -20 "$STATE/log/apt-nova.log" >&2
    die "apt-get install failed"
  }
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
psql_q() { runuser -u postgres -- "$(pg_bin)/psql" -h "$STATE/run" -U postgres -Atqc "$1" "${2:-postgres}"; }
db_url() { echo "postgresql+psycopg2://postgres@/$1?host=$STATE/run"; }
http_ok() { curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null; }
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local what=$1 tries=$2
  shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.5
  done
  die "$what did not come up (see $STATE/log)"
}

create_databases() {
  for db in nova_api nova nova_cell0 placement glance; do
    [[ -n $(psql_q "SELECT 1 FROM pg_database WHERE datname='$db'") ]] || psql_q "CREATE DATABASE $db" >/dev/null
  done
}

authtoken() {
  cat <<EOF
www_authenticate_uri = $KEYSTONE
auth_url = $KEYSTONE
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = conformance-$1
EOF
}

write_configs() {
  mkdir -p "$STATE/etc/nova" "$STATE/etc/placement" "$STATE/etc/glance" "$STATE/etc/rabbitmq" \
    "$STATE/nova/lock" "$STATE/nova/instances" "$STATE/glance/images" "$STATE/glance/staging" \
    "$STATE/glance/tasks" "$STATE/glance/lock" "$STATE/rabbit" "$STATE/log/rabbit"
  cat >"$STATE/etc/nova/nova.conf" <<EOF
[DEFAULT]
compute_driver = fake.FakeDriver
host = $COMPUTE_HOST
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $NOVA_PORT
osapi_compute_workers = 1
transport_url = rabbit://nova:$RABBIT_PASSWORD@127.0.0.1:$AMQP_PORT/
state_path = $STATE/nova
instances_path = $STATE/nova/instances
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $STATE/etc/nova/api-paste.ini
[api_database]
connection = $(db_url nova_api)
[database]
connection = $(db_url nova)
[keystone_authtoken]
$(authtoken nova)
[service_user]
send_service_user_token = false
[neutron]
$(authtoken nova)
region_name = RegionOne
[placement]
$(authtoken nova)
region_name = RegionOne
[glance]
region_name = RegionOne
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1
[compute]
consecutive_build_service_disable_threshold = 0
[vnc]
enabled = false
[spice]
enabled = false
[serial_console]
enabled = false
[oslo_concurrency]
lock_path = $STATE/nova/lock
[oslo_messaging_notifications]
driver = noop
EOF
  # Upstream's pipeline for /v2.1 (Debian ships api-paste.ini only in nova-common).
  cat >"$STATE/etc/nova/api-paste.ini" <<'EOF'
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: oscomputeversion_v2
/v2.1/+: openstack_compute_api_v21

[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = cors http_proxy_to_wsgi compute_req_id faultwrap request_log sizelimit authtoken keystonecontext osapi_compute_app_v21

[filter:request_log]
paste.filter_factory = nova.api.openstack.requestlog:RequestLog.factory

[filter:compute_req_id]
paste.filter_factory = nova.api.compute_req_id:ComputeReqIdMiddleware.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware:RequestBodySizeLimiter.factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory

[pipeline:oscomputeversions]
pipeline = cors faultwrap http_proxy_to_wsgi oscomputeversionapp

[pipeline:oscomputeversion_v2]
pipeline = cors compute_req_id faultwrap http_proxy_to_wsgi oscomputeversionapp_v2

[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory

[app:oscomputeversionapp_v2]
paste.app_factory = nova.api.openstack.compute.versions:VersionsV2.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = nova

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
EOF
  cat >"$STATE/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $STATE/log/placement.log
[placement_database]
connection = $(db_url placement)
[api]
auth_strategy = keystone
[keystone_authtoken]
$(authtoken placement)
EOF
  cat >"$STATE/etc/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
workers = 0
enabled_backends = fs:file
log_file = $STATE/log/glance-api.log
[database]
connection = $(db_url glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $STATE/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $STATE/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $STATE/glance/tasks
[keystone_authtoken]
$(authtoken glance)
[paste_deploy]
flavor = keystone
config_file = $STATE/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $STATE/glance/lock
EOF
  cat >"$STATE/etc/glance/glance-api-paste.ini" <<'EOF'
[pipeline:glance-api-keystone]
pipeline = cors http_proxy_to_wsgi versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
EOF
  cat >"$STATE/etc/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
default_user = nova
default_pass = $RABBIT_PASSWORD
loopback_users = none
vm_memory_high_watermark.absolute = 512MiB
EOF
  echo '[].' >"$STATE/etc/rabbitmq/enabled_plugins"
}

py_main() {
  local module=$1
  shift
  "$PY" -c "import sys; from $module import main; sys.exit(main())" "$@"
}

migrate() {
  # the marker, and the databases it stands for (a reset PostgreSQL cluster has none of them)
  [[ -e $STATE/nova/.ready && -n $(psql_q "SELECT 1 FROM pg_tables WHERE tablename='instances'" nova) ]] && return
  local nova=(--config-file "$STATE/etc/nova/nova.conf")
  log "migrating placement, glance and nova (about 20 s)"
  {
    py_main placement.cmd.manage --config-file "$STATE/etc/placement/placement.conf" db sync
    py_main glance.cmd.manage --config-file "$STATE/etc/glance/glance-api.conf" db_sync
    py_main nova.cmd.manage "${nova[@]}" api_db sync
    py_main nova.cmd.manage "${nova[@]}" cell_v2 map_cell0 --database_connection "$(db_url nova_cell0)"
    py_main nova.cmd.manage "${nova[@]}" cell_v2 list_cells | grep -q ' cell1 ' ||
      py_main nova.cmd.manage "${nova[@]}" cell_v2 create_cell --name cell1
    py_main nova.cmd.manage "${nova[@]}" db sync
  } >>"$STATE/log/nova-manage.log" 2>&1 || {
    tail -30 "$STATE/log/nova-manage.log" >&2
    die "migrations failed"
  }
  touch "$STATE/nova/.ready"
}

rabbit_env() {
  env HOME="$STATE/rabbit" RABBITMQ_NODENAME=osrnova@localhost \
    RABBITMQ_MNESIA_BASE="$STATE/rabbit/mnesia" RABBITMQ_LOG_BASE="$STATE/log/rabbit" \
    RABBITMQ_CONFIG_FILE="$STATE/etc/rabbitmq/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/etc/rabbitmq/enabled_plugins" \
    RABBITMQ_DIST_PORT=$DIST_PORT ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_PID_FILE="$STATE/rabbit/rabbit.pid" "$@"
}

start_rabbit() {
  if ! running "$STATE/run/epmd.pid"; then
    setsid epmd -address 127.0.0.1 -port $EPMD_PORT </dev/null >>"$STATE/log/epmd.log" 2>&1 &
    echo $! >"$STATE/run/epmd.pid"
  fi
  if running "$STATE/run/rabbit.pid"; then
    log "rabbitmq already running"
  else
    log "starting rabbitmq on 127.0.0.1:$AMQP_PORT"
    rabbit_env setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$STATE/log/rabbit.out" 2>&1 &
    echo $! >"$STATE/run/rabbit.pid"
  fi
}

start_placement() {
  if running "$STATE/run/placement.pid"; then
    log "placement already running"
    return
  fi
  log "starting placement (uwsgi) on 127.0.0.1:$PLACEMENT_PORT"
  OS_PLACEMENT_CONFIG_DIR=$STATE/etc/placement \
    setsid uwsgi --plugin python3 --http-socket "127.0.0.1:$PLACEMENT_PORT" \
    --wsgi-file /usr/bin/placement-api --master --processes 1 --threads 2 \
    --lazy-apps --die-on-term --buffer-size 65535 --need-app --add-header 'Connection: close' \
    --logto "$STATE/log/placement-uwsgi.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$STATE/run/placement.pid"
}

# Starts `python3 -c ...main()` for a daemon in its own session, its pid in $STATE/run/NAME.pid.
start_daemon() {
  local name=$1 module=$2
  shift 2
  if running "$STATE/run/$name.pid"; then
    log "$name already running"
    return
  fi
  log "starting $name"
  setsid "$PY" -c "import sys; from $module import main; sys.exit(main())" "$@" \
    </dev/null >>"$STATE/log/$name.out" 2>&1 &
  echo $! >"$STATE/run/$name.pid"
}

# ML2/openvswitch binds ports only to a host with a live Open vSwitch agent: this row stands for
# one on $COMPUTE_HOST (vxlan tunnels for project networks, `public` mapped for the flat one).
fake_ovs_agent() {
  local conf='{"bridge_mappings": {"public": "br-ex"}, "tunnel_types": ["vxlan"], "integration_bridge": "br-int", "datapath_type": "system", "ovs_hybrid_plug": false, "l2_population": false, "devices": 0}'
  if [[ -z $(psql_q "SELECT 1 FROM agents WHERE host='$COMPUTE_HOST' AND agent_type='Open vSwitch agent'" neutron) ]]; then
    log "registering a stand-in Open vSwitch agent row for $COMPUTE_HOST"
    psql_q "INSERT INTO agents (id, agent_type, \"binary\", topic, host, admin_state_up, created_at, started_at, heartbeat_timestamp, description, configurations, load) VALUES (gen_random_uuid()::text, 'Open vSwitch agent', 'neutron-openvswitch-agent', 'N/A', '$COMPUTE_HOST', true, now(), now(), '2099-01-01', 'stand-in: no agent runs (setup-real-nova.sh)', '$conf', 0)" neutron >/dev/null
  fi
}

# Ready to schedule on: nova-compute has reported since `since` (UTC; a row left by an earlier run
# is not enough: the scheduler would find the host but it may not be up), its resource provider
# has inventory in Placement, and the host is mapped to cell1 (discover_hosts).
wait_compute() {
  local since=$1 nova=(--config-file "$STATE/etc/nova/nova.conf")
  for ((i = 0; i < 240; i++)); do
    if [[ -n $(psql_q "SELECT 1 FROM services WHERE host='$COMPUTE_HOST' AND \"binary\"='nova-compute' AND deleted=0 AND updated_at >= '$since'" nova) &&
      -n $(psql_q "SELECT 1 FROM resource_providers rp JOIN inventories i ON i.resource_provider_id = rp.id WHERE rp.name='$COMPUTE_HOST' LIMIT 1" placement) ]]; then
      [[ -n $(psql_q "SELECT 1 FROM host_mappings WHERE host='$COMPUTE_HOST'" nova_api) ]] && return 0
      py_main nova.cmd.manage "${nova[@]}" cell_v2 discover_hosts >>"$STATE/log/nova-manage.log" 2>&1 ||
        die "discover_hosts failed"
      [[ -n $(psql_q "SELECT 1 FROM host_mappings WHERE host='$COMPUTE_HOST'" nova_api) ]] && return 0
    fi
    sleep 0.5
  done
  die "nova-compute did not report (see $STATE/log/nova-compute.log)"
}

main() {
  local t0=$SECONDS
  mkdir -p "$STATE/log"
  install_packages
  create_databases
  write_configs
  fake_ovs_agent
  start_rabbit
  migrate
  log "provisioning nova identity"
  node --import tsx "$HERE/provision-real.ts" nova-identity "$STATE" >>"$STATE/log/provision.log"
  start_placement
  start_daemon glance-api glance.cmd.api --config-file "$STATE/etc/glance/glance-api.conf"
  wait_for rabbitmq 120 port_open $AMQP_PORT
  local nova=(--config-file "$STATE/etc/nova/nova.conf")
  start_daemon nova-conductor nova.cmd.conductor "${nova[@]}" --log-file "$STATE/log/nova-conductor.log"
  start_daemon nova-scheduler nova.cmd.scheduler "${nova[@]}" --log-file "$STATE/log/nova-scheduler.log"
  wait_for placement 120 http_ok "http://127.0.0.1:$PLACEMENT_PORT/"
  local since='-infinity'
  running "$STATE/run/nova-compute.pid" || since=$(psql_q "SELECT (now() AT TIME ZONE 'utc')::timestamp(0)")
  start_daemon nova-compute nova.cmd.compute "${nova[@]}" --log-file "$STATE/log/nova-compute.log"
  start_daemon nova-api nova.cmd.api "${nova[@]}" --log-file "$STATE/log/nova-api.log"
  wait_for nova-api 240 http_ok "http://127.0.0.1:$NOVA_PORT/"
  wait_for glance 120 http_ok "http://127.0.0.1:$GLANCE_PORT/"
  wait_compute "$since"
  log "provisioning flavor and image"
  node --import tsx "$HERE/provision-real.ts" nova-resources "$STATE" >>"$STATE/log/provision.log"
  log "ready in $((SECONDS - t0)) s: nova http://127.0.0.1:$NOVA_PORT/v2.1, placement :$PLACEMENT_PORT, glance :$GLANCE_PORT"
}

cd "$REPO"
main "$@"
