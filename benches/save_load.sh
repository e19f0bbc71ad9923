#!/usr/bin/env bash
# hoist save and hoist load of an image with one 1 GiB layer: throughput and
# peak RSS, next to cat's throughput over the same bytes on the same disk.
#
#     benches/save_load.sh [SIZE_MIB]      (default 1024)
#
# Each measurement is taken twice: cold (page cache dropped first, needs
# root) and warm (the input was just read). cat reads the same archive to
# /dev/null: its throughput is the machine's read speed for those bytes.
# hoist load also writes every byte and fsyncs it, as the store must.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build --release -q
hoist=$PWD/target/release/hoist
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hoist-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs"
head -c "$((size_mib << 20))" /dev/urandom > "$work/rootfs/blob"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
rm -rf "$work/rootfs"
"$hoist" --root "$work/store" import "$work/rootfs.tar" bench:1 >/dev/null
rm "$work/rootfs.tar"

# seconds, peak KiB
measure() {
  local out
  out=$( { /usr/bin/time -f '%e %M' "$@" >/dev/null; } 2>&1 | tail -1 )
  echo "$out"
}
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / (s > 0 ? s : 0.001) }'; }

drop_caches() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
row() { printf '%-34s %8s %8s %9s MiB\n' "$1" "$2" "$(mbps "$bytes" "$2")" "$(($3 / 1024))"; }

"$hoist" --root "$work/store" save -o "$work/saved.tar" bench:1
bytes=$(stat -c %s "$work/saved.tar")
printf '%-34s %8s %8s %13s\n' "" "seconds" "MB/s" "peak RSS"
for cache in cold warm; do
  [ $cache = cold ] && drop_caches || cat "$work/saved.tar" > /dev/null
  read -r s kib < <(measure cat "$work/saved.tar"); row "cat archive > /dev/null ($cache)" "$s" "$kib"
  rm -f "$work/saved.tar"
  [ $cache = cold ] && drop_caches || cat "$work/store/blobs/sha256/"* > /dev/null
  read -r s kib < <(measure "$hoist" --root "$work/store" save -o "$work/saved.tar" bench:1); row "hoist save -o file ($cache)" "$s" "$kib"
  rm -rf "$work/other"
  [ $cache = cold ] && drop_caches || cat "$work/saved.tar" > /dev/null
  read -r s kib < <(measure "$hoist" --root "$work/other" load -q -i "$work/saved.tar"); row "hoist load -i file ($cache)" "$s" "$kib"
done
echo "archive: $bytes bytes; $(nproc) cores; $(uname -r)"
