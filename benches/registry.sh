#!/usr/bin/env bash
# Push and pull of an image with one 1 GiB layer (512 MiB of zeros, 512 MiB
# of random bytes) to and from a registry on loopback (CNCF distribution,
# Debian's docker-registry, plain HTTP), hoist next to `skopeo copy` of the
# same image in the same run:
#
#   push   hoist push (gzip on the way)   vs  skopeo copy docker-archive: → docker:// (gzip on the way)
#   pull   hoist pull (into a fresh store: download, gunzip, both digests,
#          tar check, stored uncompressed)  vs  skopeo copy docker:// → dir: (download, digest)
#
#     benches/registry.sh [MIB]     (default 1024; half zeros, half random)
#
# Every run is cold: hoist's remembered compressed digests and skopeo's blob
# info cache are removed first, and each push goes to a new repository.
# Reports the median of 3 runs: seconds, MB/s of the uncompressed layer,
# and peak RSS. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
runs=${RUNS:-3}
cargo build --release -q
hoist=$PWD/target/release/hoist
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hoist-registry-bench.XXXXXX")
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
host=127.0.0.1:$port

# The image: one layer, half zeros, half random.
mkdir -p "$work/rootfs/data"
half=$((mib / 2))
dd if=/dev/zero of="$work/rootfs/data/zeros.bin" bs=1M count="$half" status=none
dd if=/dev/urandom of="$work/rootfs/data/random.bin" bs=1M count="$half" status=none
tar -C "$work/rootfs" -cf "$work/layer.tar" .
rm -rf "$work/rootfs"
"$hoist" --root "$work/store" import "$work/layer.tar" big:1 >/dev/null
"$hoist" --root "$work/store" save -o "$work/big.tar" big:1
rm -f "$work/layer.tar"
bytes=$(( mib * 1024 * 1024 ))

# seconds and peak KiB of one command
timed() {
  if ! /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/cmd.err"; then
    echo "failed: $*" >&2; tail -5 "$work/cmd.err" >&2; echo "nan 0"; return
  fi
  tail -1 "$work/time.out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
skopeo_cold() { rm -f /var/lib/containers/cache/blob-info-cache-v1.* "$HOME"/.local/share/containers/cache/blob-info-cache-v1.* 2>/dev/null || true; }

declare -A result
record() { # name seconds... ; rss
  local name=$1 rss=$2; shift 2
  result[$name]=$(printf '%s\n' "$@" | median)
  result[$name.rss]=$((rss / 1024))
}

for tool in hoist skopeo; do
  times=(); rss=0
  for n in $(seq 1 "$runs"); do
    if [ "$tool" = hoist ]; then
      rm -rf "$work/store/cache/compressed"
      read -r s kib < <(timed "$hoist" --root "$work/store" push -q big:1 "$host/bench/hoist-$n:1")
    else
      skopeo_cold
      read -r s kib < <(timed skopeo copy -q --dest-tls-verify=false "docker-archive:$work/big.tar" "docker://$host/bench/skopeo-$n:1")
    fi
    times+=("$s"); [ "$kib" -gt "$rss" ] && rss=$kib
  done
  record "$tool.push" "$rss" "${times[@]}"
done

for tool in hoist skopeo; do
  times=(); rss=0
  for n in $(seq 1 "$runs"); do
    rm -rf "$work/pulled"
    if [ "$tool" = hoist ]; then
      read -r s kib < <(timed "$hoist" --root "$work/pulled" pull -q "$host/bench/hoist-1:1")
    else
      skopeo_cold
      read -r s kib < <(timed skopeo copy -q --src-tls-verify=false "docker://$host/bench/hoist-1:1" "dir:$work/pulled")
    fi
    times+=("$s"); [ "$kib" -gt "$rss" ] && rss=$kib
  done
  record "$tool.pull" "$rss" "${times[@]}"
done

mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / (s > 0 ? s : 0.001) }'; }
printf '%-6s %10s %10s %10s %10s %12s %12s\n' case "hoist s" "hoist MB/s" "skopeo s" "skopeo MB/s" "hoist RSS" "skopeo RSS"
for case in push pull; do
  printf '%-6s %10s %10s %10s %10s %9s MiB %9s MiB\n' "$case" \
    "${result[hoist.$case]}" "$(mbs "${result[hoist.$case]}")" \
    "${result[skopeo.$case]}" "$(mbs "${result[skopeo.$case]}")" \
    "${result[hoist.$case.rss]}" "${result[skopeo.$case.rss]}"
done
echo "layer: $mib MiB (half zeros, half random), gzip; median of $runs; $(nproc) cores; $(uname -r); skopeo $(skopeo --version | awk '{print $3}')"
