#!/bin/sh
# nvmechaos guest init (PID 1): nvmechaos.guest.builder puts this file into the initramfs as /init.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
exec 0</dev/console 1>/dev/console 2>&1
net_up() {
  ip link set lo up
  ip addr add 10.0.2.15/24 dev eth0
  ip link set eth0 up
  ip route add default via 10.0.2.2
  net=up
}
# Module options from the kernel command line (nvme_core.io_timeout=5), as modprobe would pass them:
# insmod alone does not, and the kernel applies them only to built-in modules.
options_for() {
  name=${1##*/}; name=${name%.ko}; name=$(echo "$name" | tr - _)
  # shellcheck disable=SC2013
  for word in $(cat /proc/cmdline); do
    case "$word" in "$name".*=*) printf '%s ' "${word#"$name".}";; esac
  done
}
while read -r module; do
  # shellcheck disable=SC2046
  insmod "/lib/modules/$module" $(options_for "$module") || echo "nvmechaos: insmod $module failed"
  case "$module" in */virtio_net.ko) net_up;; esac
done < /etc/nvmechaos/modules
[ "$net" = up ] || net_up
if [ -s /etc/nvmechaos/tools ]; then
  # fio, nvme-cli and their libraries live on a read-only disk, paged in on use: an initramfs
  # without them unpacks ~0.7 s faster under TCG. /usr/bin/fio etc. are symlinks into it.
  n=0
  while [ ! -b /dev/vda ] && [ $n -lt 40 ]; do usleep 50000; n=$((n + 1)); done
  mount -t ext4 -o ro /dev/vda /opt/tools || echo "nvmechaos: cannot mount the tools disk /dev/vda"
fi
# The kernel command line is one line of words: split it on purpose.
# shellcheck disable=SC2013
for word in $(cat /proc/cmdline); do
  case "$word" in
    nvmechaos.authkey=*)
      key="${word#nvmechaos.authkey=}"
      echo "${key%%:*} ${key#*:}" > /root/.ssh/authorized_keys
      chmod 600 /root/.ssh/authorized_keys;;
  esac
done
dropbear -s -g -E -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -P /run/dropbear.pid
echo "nvmechaos: sshd started"
while :; do sleep 3600; done
