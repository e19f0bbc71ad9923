#!/usr/bin/env bash
# Whole builds, hoist next to docker build (BuildKit, Engine from Debian's
# docker.io, started here on a private socket) and buildah bud, when they
# are installed, in one run on one machine:
#
#   noop     no-op rebuild of a 20,000-file, ~300 MB context (COPY . /ctx)
#   copy     cold COPY of that context
#   run60    60 tiny RUN steps, cold
#
#     benches/build.sh [FILES] [TOTAL_MB]     (defaults 20000 300)
#
# HOIST_BASELINE=/path/to/another/hoist adds that binary as the engine
# "baseline" (its own store, the same cases, the same run): how a change
# moved the figures.
#
# Reports the median of 3 runs in seconds and hoist's peak RSS. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-20000}
total_mb=${2:-300}
cargo build --release -q
hoist=$PWD/target/release/hoist
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hoist-build-bench.XXXXXX")
dockerd_pid=
cleanup() {
  if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid" 2>/dev/null || true; wait "$dockerd_pid" 2>/dev/null || true; fi
  umount -R "$work/docker/root" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The base image, the same bytes for every engine.
fixtures/busybox-rootfs.sh "$work/rootfs.tar"
"$hoist" --root "$work/store" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:latest >/dev/null
"$hoist" --root "$work/store" save -o "$work/busybox.tar" busybox:latest
baseline=${HOIST_BASELINE:-}
if [ -n "$baseline" ]; then
  "$baseline" --root "$work/store-baseline" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:latest >/dev/null
fi

# The context: FILES files in 100 directories, TOTAL_MB in all.
python3 - "$work/ctx" "$files" "$total_mb" <<'EOF'
import os, sys
root, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
size = total // files
block = os.urandom(1 << 20)
for i in range(files):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        off = (i * 7919) % ((1 << 20) - size) if size < (1 << 20) else 0
        f.write(block[off:off + size] + i.to_bytes(8, "little"))
EOF
printf 'FROM busybox\nCOPY . /ctx\n' > "$work/ctx/Dockerfile"
sleep 3 # let the context age past the racily-clean window
mkdir -p "$work/run60"
{ echo 'FROM busybox'; for i in $(seq 1 60); do echo "RUN echo $i > /step-$i"; done; } > "$work/run60/Dockerfile"

# dockerd runs only while docker's cases run, so that it does not take CPU
# from the other engines' measurements.
docker=()
have_docker=false
command -v dockerd >/dev/null && [ -x /usr/bin/docker ] && have_docker=true
start_dockerd() {
  mkdir -p "$work/docker"
  dockerd --host "unix://$work/docker/sock" --data-root "$work/docker/root" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/pid" --bridge=none --iptables=false --ip-masq=false >"$work/docker/log" 2>&1 &
  dockerd_pid=$!
  docker=(/usr/bin/docker -H "unix://$work/docker/sock")
  for _ in $(seq 1 100); do "${docker[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
  "${docker[@]}" load -i "$work/busybox.tar" >/dev/null
}
stop_dockerd() {
  kill "$dockerd_pid" 2>/dev/null || true; wait "$dockerd_pid" 2>/dev/null || true; dockerd_pid=
}
buildah_ok=false
if command -v buildah >/dev/null; then
  buildah --storage-driver vfs --root "$work/buildah" --runroot "$work/buildah-run" pull -q "docker-archive:$work/busybox.tar" >/dev/null 2>&1 \
    && buildah --storage-driver vfs --root "$work/buildah" --runroot "$work/buildah-run" tag "$(buildah --storage-driver vfs --root "$work/buildah" --runroot "$work/buildah-run" images -q | head -1)" busybox:latest >/dev/null 2>&1 \
    && buildah_ok=true
fi

# seconds and peak KiB of one command
timed() {
  if ! /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/cmd.err"; then
    echo "failed: $*" >&2; tail -5 "$work/cmd.err" >&2; echo "nan 0"; return
  fi
  tail -1 "$work/time.out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# One executable per engine, so that /usr/bin/time measures the engine
# itself (each wrapper execs it).
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec %q --root %q build --progress quiet "$@"\n' "$hoist" "$work/store" > "$work/bin/hoist_build"
printf '#!/bin/sh\nDOCKER_BUILDKIT=1 exec /usr/bin/docker -H %q build --network host -q "$@"\n' "unix://$work/docker/sock" > "$work/bin/docker_build"
printf '#!/bin/sh\nexec buildah --storage-driver vfs --root %q --runroot %q bud --isolation chroot --layers -q "$@"\n' \
  "$work/buildah" "$work/buildah-run" > "$work/bin/buildah_build"
if [ -n "$baseline" ]; then
  printf '#!/bin/sh\nexec %q --root %q build --progress quiet "$@"\n' "$baseline" "$work/store-baseline" > "$work/bin/baseline_build"
fi
chmod +x "$work/bin/"*
PATH=$work/bin:$PATH

declare -A result
run_case() { # engine case command...
  local engine=$1 case=$2; shift 2
  local times=() rss=0
  for _ in 1 2 3; do
    case $case in
      copy|run60) prepare_cold "$engine" ;;
    esac
    read -r s kib < <(timed "$@")
    times+=("$s"); [ "$kib" -gt "$rss" ] && rss=$kib
  done
  result[$engine.$case]=$(printf '%s\n' "${times[@]}" | median)
  result[$engine.$case.rss]=$((rss / 1024))
}
prepare_cold() {
  case $1 in
    hoist) rm -rf "$work/store/cache" ;;
    baseline) rm -rf "$work/store-baseline/cache" ;;
    docker) "${docker[@]}" builder prune -af >/dev/null 2>&1 || true ;;
    buildah) buildah --storage-driver vfs --root "$work/buildah" --runroot "$work/buildah-run" rmi -a -f >/dev/null 2>&1 || true
             buildah --storage-driver vfs --root "$work/buildah" --runroot "$work/buildah-run" pull -q "docker-archive:$work/busybox.tar" >/dev/null 2>&1 || true ;;
  esac
}

engines=(hoist)
[ -n "$baseline" ] && engines+=(baseline)
$have_docker && engines+=(docker)
$buildah_ok && engines+=(buildah)
for engine in "${engines[@]}"; do
  if [ "$engine" = docker ]; then start_dockerd; fi
  "${engine}_build" -t bench:ctx "$work/ctx" >/dev/null 2>&1 || echo "$engine: first build failed" >&2 # warm the cache for noop
  run_case "$engine" noop "${engine}_build" -t bench:ctx "$work/ctx"
  run_case "$engine" copy "${engine}_build" -t bench:ctx "$work/ctx"
  run_case "$engine" run60 "${engine}_build" -t bench:run60 "$work/run60"
  if [ "$engine" = docker ]; then stop_dockerd; fi
done

printf '%-8s' case; for e in "${engines[@]}"; do printf '%12s' "$e s"; done; printf '%14s' "hoist RSS MiB"
for e in "${engines[@]}"; do [ "$e" != hoist ] && printf '%16s' "$e/hoist"; done; echo
for case in noop copy run60; do
  printf '%-8s' "$case"
  for e in "${engines[@]}"; do printf '%12s' "${result[$e.$case]}"; done
  printf '%14s' "${result[hoist.$case.rss]}"
  for e in "${engines[@]}"; do
    [ "$e" != hoist ] && printf '%16s' "$(awk -v a="${result[$e.$case]}" -v b="${result[hoist.$case]}" 'BEGIN { printf "%.1fx", a / (b > 0 ? b : 0.001) }')"
  done
  echo
done
echo "context: $files files, $(du -sm "$work/ctx" | cut -f1) MB; $(nproc) cores; $(uname -r)"
