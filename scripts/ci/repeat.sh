#!/usr/bin/env bash
# Stability proof: run CI (or `make test`) on N fresh clones of the committed HEAD, one after another,
# as CI does (CI=true, no standard input). Stops at the first failure and keeps that clone and its log.
#
#   scripts/ci/repeat.sh 5                              # .ci/run on 5 fresh clones
#   scripts/ci/repeat.sh --target test --cpu-neighbour 3  # make test beside a busy loop pinned to core 0
#
# Options:
#   --target ci|test    what each clone runs: `bash .ci/run` (default) or `make test`
#   --cpu-neighbour     a CPU-bound process pinned to one core for the whole of each run
#                       (stress-ng when installed, else a Python busy loop), as on a shared machine
#   --work-dir DIR      where clones and logs go (default: a new directory under ${TMPDIR:-/tmp})
# Writes DIR/repeat.json (one record per run) and prints one line per run. Exit 0 only when all passed.
set -euo pipefail

target=ci neighbour=false work_dir=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --target) target=$2; shift 2 ;;
    --cpu-neighbour) neighbour=true; shift ;;
    --work-dir) work_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
runs=${1:-}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]] || [[ $target != ci && $target != test ]]; then
  echo "usage: $0 [--target ci|test] [--cpu-neighbour] [--work-dir DIR] N (see --help)" >&2
  exit 2
fi

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
work_dir=${work_dir:-$(mktemp -d "${TMPDIR:-/tmp}/ci-repeat-XXXXXX")}
mkdir -p "$work_dir"
records=()
neighbour_pid=""

start_neighbour() {
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu 1 --taskset 0 --quiet --timeout 0 &
  else
    taskset -c 0 python3 -c 'while True: pass' &
  fi
  neighbour_pid=$!
}

stop_neighbour() {
  if [[ -n $neighbour_pid ]]; then
    kill "$neighbour_pid" 2>/dev/null || true
    wait "$neighbour_pid" 2>/dev/null || true
    neighbour_pid=""
  fi
}
trap stop_neighbour EXIT

write_summary() {
  local IFS=,
  printf '{"commit": "%s", "target": "%s", "cpu_neighbour": %s, "runs": [%s]}\n' \
    "$commit" "$target" "$neighbour" "${records[*]}" >"$work_dir/repeat.json"
}

echo "repeat: $runs x $target on fresh clones of $commit (cpu neighbour: $neighbour) in $work_dir"
for ((i = 1; i <= runs; i++)); do
  clone="$work_dir/clone-$i"
  git clone --quiet "$repo" "$clone"
  git -C "$clone" checkout --quiet "$commit"
  [[ $neighbour == true ]] && start_neighbour
  t0=$SECONDS rc=0
  if [[ $target == ci ]]; then
    (cd "$clone" && CI=true bash .ci/run </dev/null >"$work_dir/run-$i.log" 2>&1) || rc=$?
  else
    (cd "$clone" && CI=true make test </dev/null >"$work_dir/run-$i.log" 2>&1) || rc=$?
  fi
  stop_neighbour
  took=$((SECONDS - t0))
  records+=("{\"run\": $i, \"exit\": $rc, \"seconds\": $took, \"log\": \"$work_dir/run-$i.log\"}")
  write_summary
  echo "repeat: run $i/$runs exit $rc in ${took}s ($(grep -E '^=+ .*(passed|failed).* =+$' "$work_dir/run-$i.log" | head -1 | tr -d '='))"
  if [[ $rc -ne 0 ]]; then
    echo "repeat: run $i failed; its clone is kept at $clone, its log at $work_dir/run-$i.log" >&2
    exit 1
  fi
  rm -rf "$clone"
done
echo "repeat: $runs consecutive passes of $target at $commit; summary in $work_dir/repeat.json"
