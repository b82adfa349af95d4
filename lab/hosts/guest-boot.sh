#!/bin/bash
# The part of a lab VM's boot that runs inside the VM, for both kinds: sourced by vm-boot.sh (m1.*,
# namespaces) after pivot_root, and by the kernel VMs' init (k1.*, QEMU) once the root and the
# network are up. What cloud-init does on the seed's images: hostname, per-instance host keys, the
# default user with the keypair, apt pointed at the lab mirror, the host keys on the console; then
# sshd and the enabled boot services.
# Expects: seed (the config drive: hostname, user, authorized_keys, instance-id, key-types,
# services, address, mac, apt-mirror), start (boot time in microseconds), ci_version, vm_exec (runs
# a service, with whatever restrictions the VM kind has), and fd 3 (the ready pipe).
# klog, cilog and uptime_s are defined here. Ends with fd 9 = the ready pipe, fd 3 closed.

uptime_s() { local d=$(( ${EPOCHREALTIME/./} - start )); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }
klog() { local d=$(( ${EPOCHREALTIME/./} - start )); printf '[%5d.%06d] %s\n' $((d / 1000000)) $((d % 1000000)) "$*"; }
cilog() { while IFS= read -r line; do klog "cloud-init[$$]: $line"; done; }

guest_boot() {
  host=$(cat "$seed/hostname")
  user=$(cat "$seed/user")
  iid=$(cat "$seed/instance-id")
  hostname "$host"

  klog "cloud-init[$$]: Cloud-init v. $ci_version running 'init-local' at $(date -R). Up $(uptime_s) seconds."
  klog "cloud-init[$$]: Cloud-init v. $ci_version running 'init' at $(date -R). Up $(uptime_s) seconds."
  {
    printf 'ci-info: +++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++\n'
    printf 'ci-info: +--------+------+-----------------+---------------+--------+-------------------+\n'
    printf 'ci-info: | Device |  Up  |     Address     |      Mask     | Scope  |     Hw-Address    |\n'
    printf 'ci-info: +--------+------+-----------------+---------------+--------+-------------------+\n'
    printf 'ci-info: |  ens3  | True | %15s | 255.255.255.0 | global | %17s |\n' "$(cat "$seed/address")" "$(cat "$seed/mac")"
    printf 'ci-info: |   lo   | True |    127.0.0.1    |   255.0.0.0   |  host  |         .         |\n'
    printf 'ci-info: +--------+------+-----------------+---------------+--------+-------------------+\n'
  } | cilog

  # --- first boot of this instance: what cloud-init's modules do once per instance ---
  if [ "$(cat /var/lib/cloud/data/instance-id 2>/dev/null || true)" != "$iid" ]; then
    printf '%s\n' "$host" > /etc/hostname
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n\n::1 ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n' "$host" > /etc/hosts
    tr -d '-' < /proc/sys/kernel/random/uuid > /etc/machine-id

    # Fresh host keys: the machine's own keys must never be served by a VM.
    rm -f /etc/ssh/ssh_host_*
    for type in $(cat "$seed/key-types"); do
      printf 'Generating public/private %s key pair.\n' "$type" | cilog
      ssh-keygen -q -t "$type" -N '' -C "root@$host" -f "/etc/ssh/ssh_host_${type}_key"
    done
    {
      echo '# Written by the runbook lab on first boot (like a cloud image): keys only, no root login.'
      echo 'Port 22'
      echo 'AddressFamily inet'
      echo 'ListenAddress 0.0.0.0'
      for type in $(cat "$seed/key-types"); do echo "HostKey /etc/ssh/ssh_host_${type}_key"; done
      echo 'PermitRootLogin no'
      echo 'PubkeyAuthentication yes'
      echo 'PasswordAuthentication no'
      echo 'KbdInteractiveAuthentication no'
      echo 'UsePAM yes'
      echo 'UseDNS no'
      echo 'X11Forwarding no'
      echo 'PrintMotd no'
      echo 'MaxStartups 100:30:200'
      echo 'AcceptEnv LANG LC_*'
      echo 'Subsystem sftp /usr/lib/openssh/sftp-server'
    } > /etc/ssh/sshd_config

    if ! getent passwd "$user" > /dev/null; then
      groups=''
      for g in adm cdrom dip plugdev sudo; do getent group "$g" > /dev/null && groups="$groups,$g"; done
      useradd --create-home --shell /bin/bash --groups "${groups#,}" --comment "$user" "$user"
    fi
    # '*': no password, but not a locked account (sshd refuses locked accounts without PAM).
    usermod --password '*' "$user"
    home=$(getent passwd "$user" | cut -d: -f6)
    group=$(id -gn "$user")
    install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
    install -m 0600 -o "$user" -g "$group" "$seed/authorized_keys" "$home/.ssh/authorized_keys"
    printf '# Created by the runbook lab (cloud-init users module)\n%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > /etc/sudoers.d/90-cloud-init-users
    chmod 0440 /etc/sudoers.d/90-cloud-init-users

    ts=$(date '+%b %e %H:%M:%S')
    {
      echo '#############################################################'
      echo '-----BEGIN SSH HOST KEY FINGERPRINTS-----'
      for f in /etc/ssh/ssh_host_*key.pub; do ssh-keygen -l -f "$f"; done
      echo '-----END SSH HOST KEY FINGERPRINTS-----'
      echo '#############################################################'
    } | sed "s/^/<14>$ts cloud-init: /"
    echo '-----BEGIN SSH HOST KEY KEYS-----'
    cat /etc/ssh/ssh_host_*key.pub
    echo '-----END SSH HOST KEY KEYS-----'

    # apt: the lab's mirror and nothing else (cloud-init's apt module). The machine's sources are
    # unreachable from the lab; the rm only whites them out in this VM's overlay.
    mirror=$(cat "$seed/apt-mirror" 2>/dev/null || true)
    if [ -n "$mirror" ]; then
      find /etc/apt/sources.list.d -mindepth 1 -delete 2>/dev/null || true
      printf '# Written by the runbook lab on first boot: the lab package mirror only.\ndeb [trusted=yes] %s ./\n' "$mirror" > /etc/apt/sources.list
      mirror_host=${mirror#http://}
      mirror_host=${mirror_host%%[:/]*}
      {
        echo '// Written by the runbook lab on first boot: fail fast when the lab mirror does not answer.'
        echo 'Acquire::Retries "0";'
        echo 'Acquire::http::Timeout "5";'
        echo "Acquire::http::Proxy::$mirror_host \"DIRECT\";"
        echo 'Acquire::Languages "none";'
      } > /etc/apt/apt.conf.d/99runbook-lab-mirror
      printf 'apt: sources set to the lab mirror %s\n' "$mirror" | cilog
    fi

    mkdir -p /var/lib/cloud/data
    printf '%s\n' "$iid" > /var/lib/cloud/data/instance-id
  fi

  # --- services: sshd, as the image's init would start it ---
  # fd 3 (the ready pipe) moves to 9 and is closed for every service, so no daemon holds it open.
  exec 9>&3 3>&-
  vm_exec env -i PATH="$PATH" LANG=C.UTF-8 /usr/sbin/sshd 9>&-
  # sshd binds after it daemonised: wait until port 22 (0016) listens (state 0A) before saying ready.
  for _ in $(seq 500); do
    grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:0000 0A' /proc/net/tcp && break
    sleep 0.01
  done
  grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:0000 0A' /proc/net/tcp

  # Announce the address (gratuitous ARP), as a cloud image's network setup does once it is up: a
  # neighbour that still has an earlier server's MAC for this fixed IP (a server re-created behind a
  # jumphost) learns the new one now instead of after its neighbour entry times out. arp_notify
  # makes the kernel announce every address of a link when the link comes up or its MAC is set.
  sysctl -qw net.ipv4.conf.all.arp_notify=1
  ip link set dev ens3 address "$(cat "$seed/mac")"

  # Services enabled in the VM's /etc/rc2.d that the image starts at boot (the seed lists which: the
  # lab has no init system, and starting all of the machine's services in every VM would be waste).
  for svc in $(cat "$seed/services"); do
    if [ -x "/etc/init.d/$svc" ] && ls /etc/rc2.d/S[0-9][0-9]"$svc" > /dev/null 2>&1; then
      vm_exec env -i PATH="$PATH" LANG=C.UTF-8 "/etc/init.d/$svc" start < /dev/null 9>&- 2>&1 || klog "runbook lab: $svc failed to start"
    fi
  done

  . /etc/os-release
  printf '\n%s %s ttyS0\n\n%s login: ' "$PRETTY_NAME" "$host" "$host"
  klog "cloud-init[$$]: Cloud-init v. $ci_version running 'modules:final' at $(date -R). Up $(uptime_s) seconds."
  klog "cloud-init[$$]: Cloud-init v. $ci_version finished at $(date -R). Datasource DataSourceOpenStackLocal [net,ver=2].  Up $(uptime_s) seconds"
  mkdir -p /var/lib/cloud/instance
  date -R > /var/lib/cloud/instance/boot-finished

}
