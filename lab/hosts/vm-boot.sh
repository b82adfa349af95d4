#!/bin/bash
# Boots one lab VM. Runs as PID 1 of the VM's own PID namespace, inside the VM's network namespace
# and fresh private mount, UTS and IPC namespaces. lab/hosts/vm.ts starts it as
#   nsenter --net=/run/netns/rbl-vm-X unshare --pid --fork --mount --uts --ipc --propagation private bash vm-boot.sh
# with, in the environment:
#   RBL_DISK         the VM's disk: a tmpfs on the machine holding upper/, work/ and the mount point root/
#   RBL_SEED         the VM's config drive (a directory): hostname, user, authorized_keys, instance-id,
#                    key-types, services (started at boot when enabled), address, mac, apt-mirror
#                    (the lab's package mirror URL, or empty)
#   RBL_ROOT_SOURCE  the source name of the overlay root (so teardown can find stray processes)
#   RBL_LOWER        the image's root filesystem (lab/images), the overlay's read-only lower layer
# stdout and stderr are the VM's console log; fd 3 is a pipe that receives "ready" once sshd listens.
# The console mimics cloud-init's, so that the SSH host key fingerprints can be pinned from it.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C LC_ALL=C
trap 'echo "runbook lab: boot failed at line $LINENO (exit $?)" >&2' ERR

disk=$RBL_DISK
seed=$RBL_SEED
root=$disk/root
start=${EPOCHREALTIME/./}
ci_version='23.1.2-0ubuntu0~22.04.1 (runbook lab)'


# --- the root filesystem: the image as the read-only lower layer, the VM's disk as upper ---
mount --make-rprivate /
mkdir -p "$disk/upper" "$disk/work" "$root"
mount -t overlay "$RBL_ROOT_SOURCE" -o "lowerdir=$RBL_LOWER,upperdir=$disk/upper,workdir=$disk/work" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# Most of /proc/sys is the machine's (kernel.*, vm.*): read-only. net.* belongs to the VM's netns.
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then mount --bind -o ro /dev/null "$root/proc/sysrq-trigger"; fi
# sysfs mounted from inside the VM's network namespace lists only the VM's interfaces.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o nosuid,mode=0755,size=4m dev "$root/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 0666 "$root/dev/$name" c "$major" "$minor"
done
mkdir -m 0755 "$root/dev/pts"
mkdir -m 1777 "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$root/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m shm "$root/dev/shm"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=0755,size=64m run "$root/run"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=512m tmp "$root/tmp"
mkdir -m 1777 "$root/run/lock"
mkdir -m 0755 "$root/run/sshd"
install -m 0664 /dev/null "$root/run/utmp"
mkdir -p "$root/var/lib/cloud/seed/nocloud"
cp "$seed"/* "$root/var/lib/cloud/seed/nocloud/"
# The in-VM part of the boot, shared with kernel VMs; read now, while the machine's tree is visible.
# shellcheck source=guest-boot.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-boot.sh"

# Swap roots; the machine's tree is detached so that the VM cannot see the machine's mounts.
cd "$root"
pivot_root . .
umount -l .
cd /

seed=/var/lib/cloud/seed/nocloud
# What no process of a VM may do even as root: load modules, make device nodes (the machine's
# disks), touch raw I/O or the clock. Not a security boundary, a guard against accidents.
vm_exec() { setpriv --bounding-set -sys_module,-sys_rawio,-sys_time,-mknod,-syslog,-wake_alarm,-block_suspend,-mac_admin,-mac_override -- "$@"; }
klog "Linux version $(uname -r) (runbook lab: namespaces on the machine's kernel)"
guest_boot
echo ready >&9
exec 9>&- < /dev/null > /dev/null 2>&1
trap - ERR
set +e
# PID 1 of the VM: reap every orphan (daemons started by `service`), forever.
while :; do
  sleep 86400 &
  wait $!
done
