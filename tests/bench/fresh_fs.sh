# The file system every cold bench run starts on, defined once: sourced by run.sh and called
# by cpu_share.py, so the two measure the same conditions.
#
#   fresh_fs MNT IMG SIZE_GB [ext4|tmpfs]
#
# Unmounts MNT and deletes IMG, then mounts at MNT a new ext4 made in the loop file IMG
# (`mkfs.ext4 -m 0 -i 8192`, mounted `noinit_itable`), or a tmpfs (at most 16 GB) when asked
# for one or when the loop mount fails; makes MNT/tmp, syncs and drops the page cache. Sets
# FRESH_FSTYPE to the type mounted.
fresh_fs() {
  local mnt=$1 img=$2 size_gb=$3 fstype=${4:-ext4}
  mountpoint -q "$mnt" && umount "$mnt"
  rm -f "$img"
  sync # let the deletion's journal commit (and discards) finish before the next command
  if [ "$fstype" = ext4 ]; then
    if ! { truncate -s "${size_gb}G" "$img" && mkfs.ext4 -q -F -m 0 -i 8192 "$img" &&
      mount -o loop,noinit_itable "$img" "$mnt" 2>/dev/null; }; then
      rm -f "$img"
      fstype=tmpfs
    fi
  fi
  if [ "$fstype" = tmpfs ]; then
    mount -t tmpfs -o size=$((size_gb < 16 ? size_gb : 16))g tmpfs "$mnt"
  fi
  mkdir -p "$mnt/tmp"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  FRESH_FSTYPE=$fstype
}
