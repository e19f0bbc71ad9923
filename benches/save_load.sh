#!/usr/bin/env bash
# hoist save and hoist load of an image with one 1 GiB layer: throughput and
# peak RSS, next to cat's throughput over the same bytes on the same disk.
#
#     benches/save_load.sh [SIZE_MIB]      (default 1024)
#
# Run as root or as a user with a writable $TMPDIR; the page cache is warm
# for every measurement (each file is read once before it is timed), so the
# figures compare CPU and write cost, not the disk's read speed.
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

"$hoist" --root "$work/store" save -o "$work/warm.tar" bench:1
bytes=$(stat -c %s "$work/warm.tar")
cat "$work/warm.tar" > /dev/null
read -r cat_s cat_kib < <(measure sh -c "cat '$work/warm.tar' > '$work/cat-copy.tar'")
rm -f "$work/cat-copy.tar" "$work/warm.tar"
read -r save_s save_kib < <(measure "$hoist" --root "$work/store" save -o "$work/saved.tar" bench:1)
cat "$work/saved.tar" > /dev/null
read -r load_s load_kib < <(measure "$hoist" --root "$work/other" load -q -i "$work/saved.tar")

printf '%-28s %10s %10s %12s\n' "" "seconds" "MB/s" "peak RSS"
printf '%-28s %10s %10s %9s MiB\n' "cat archive > file" "$cat_s" "$(mbps "$bytes" "$cat_s")" "$((cat_kib / 1024))"
printf '%-28s %10s %10s %9s MiB\n' "hoist save -o file" "$save_s" "$(mbps "$bytes" "$save_s")" "$((save_kib / 1024))"
printf '%-28s %10s %10s %9s MiB\n' "hoist load -i file" "$load_s" "$(mbps "$bytes" "$load_s")" "$((load_kib / 1024))"
echo "archive: $bytes bytes"
