#!/usr/bin/env bash
# Submits a culturetune plan to SLURM: one calibration job per distinct calibration of the
# plan, then a job array (scripts/slurm-job.sbatch, one task per job, started once the
# calibrations are done), then a merge of every job's database into WORK/sweep.db once the
# array has ended. Run it on the login node, from a directory on shared storage:
#   culturetune plan --region all --seeds 1,2,3 > plan.jsonl
#   scripts/slurm-sweep.sh plan.jsonl WORK [extra sbatch options, e.g. --partition=gpu --gres=gpu:1]
# Submitting it again runs only what is not done (done jobs return at once; merge skips what
# WORK/sweep.db already has). Prints the ids of the jobs it submitted.
# Environment: CULTURETUNE (the binary, on shared storage or on every node; default:
# culturetune on PATH), CULTURETUNE_TARGETS (a targets table, if the plan was made with one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plan=$(realpath -m "${1:?usage: slurm-sweep.sh PLAN WORK [sbatch options]}")
work=$(realpath -m "${2:?usage: slurm-sweep.sh PLAN WORK [sbatch options]}")
shift 2
[ -f "$plan" ] || { echo "slurm-sweep: $plan is not a file (make it with culturetune plan)" >&2; exit 2; }
ct=${CULTURETUNE:-culturetune}
targets=()
[ -n "${CULTURETUNE_TARGETS:-}" ] && targets=(--targets "$CULTURETUNE_TARGETS")
mkdir -p "$work/logs"
n=$(grep -cv '^[[:space:]]*$' "$plan" || true)
[ "$n" -gt 0 ] || { echo "slurm-sweep: $plan has no jobs" >&2; exit 2; }
export CULTURETUNE="$ct" CULTURETUNE_TARGETS="${CULTURETUNE_TARGETS:-}"

# The first job of each distinct calibration computes it.
declare -A first=()
i=0
while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*$ ]] && continue
  cal=$(sed -n 's/.*"calibration":"\([0-9a-f]\{16\}\)".*/\1/p' <<<"$line")
  [ -n "${first[$cal]:-}" ] || first[$cal]=$i
  i=$((i + 1))
done <"$plan"
deps=()
for cal in "${!first[@]}"; do
  if [ ! -e "$work/cal-$cal.db" ]; then
    cmd="$ct ${targets[*]} --db $work/cal-$cal.db job $plan --index ${first[$cal]} --calibrate-only"
    deps+=("$(sbatch --parsable --job-name=culturetune-cal --output="$work/logs/cal-%j.out" "$@" --wrap "$cmd")")
  fi
done
dep=()
((${#deps[@]})) && dep=(--dependency="afterok:$(IFS=:; echo "${deps[*]}")")
array=$(sbatch --parsable --array="0-$((n - 1))" --output="$work/logs/job-%A_%a.out" "${dep[@]}" "$@" \
  "$here/slurm-job.sbatch" "$plan" "$work")
merge=$(sbatch --parsable --job-name=culturetune-merge --dependency="afterany:$array" \
  --output="$work/logs/merge-%j.out" --wrap "$ct --db $work/sweep.db merge $work/jobs/*.db")
echo "calibration: ${deps[*]:-none needed}; array: $array ($n jobs); merge: $merge -> $work/sweep.db"
