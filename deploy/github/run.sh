#!/usr/bin/env bash
# The shell part of deploy/github/action.yml: runs `labtrace run` with
# --junit into the run folder, then writes the step outputs (run-id,
# run-dir, junit, exit-code) to $GITHUB_OUTPUT and a job summary to
# $GITHUB_STEP_SUMMARY. Always exits 0 so that the upload and publish steps
# run; the action's last step exits with labtrace's code.
#
# Environment: LABTRACE (controller, default labtrace), LABTRACE_PLAN,
# LABTRACE_INVENTORY, LABTRACE_OUT, LABTRACE_RUN_ID, LABTRACE_ARGS (split on
# spaces), GITHUB_OUTPUT and GITHUB_STEP_SUMMARY (files; optional).
set -uo pipefail
labtrace="${LABTRACE:-labtrace}"
plan="${LABTRACE_PLAN:?LABTRACE_PLAN: the plan to run}"
inventory="${LABTRACE_INVENTORY:?LABTRACE_INVENTORY: the inventory}"
out="${LABTRACE_OUT:-labtrace-runs}"
run_id="${LABTRACE_RUN_ID:?LABTRACE_RUN_ID: the run id}"
output="${GITHUB_OUTPUT:-/dev/null}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
run_dir="$out/$run_id"
junit="$run_dir/junit.xml"

mkdir -p "$out"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086  # LABTRACE_ARGS is a list of flags
"$labtrace" run "$plan" --inventory "$inventory" --out "$out" \
  --run-id "$run_id" --junit "$junit" ${LABTRACE_ARGS:-} 2>&1 | tee "$log"
code=${PIPESTATUS[0]}

{
  echo "run-id=$run_id"
  echo "exit-code=$code"
  # Empty when the run never created its folder (bad plan or inventory):
  # the later steps then have nothing to upload or publish.
  if [[ -d "$run_dir" ]]; then echo "run-dir=$run_dir"; else echo "run-dir="; fi
  if [[ -f "$junit" ]]; then echo "junit=$junit"; else echo "junit="; fi
} >>"$output"

{
  case "$code" in
    0) verdict="passed" ;;
    3) verdict="some host was unreachable or timed out" ;;
    4) verdict="some step failed" ;;
    5) verdict="data problem (digest mismatch or lost events)" ;;
    130) verdict="interrupted" ;;
    *) verdict="did not run (exit $code)" ;;
  esac
  echo "### labtrace run \`$run_id\`: $verdict"
  echo
  if [[ -f "$run_dir/report.html" ]]; then
    echo "Open \`report.html\` in the artifact for the timeline and every trace file."
    echo
  fi
  echo '```'
  tail -n 60 "$log"
  echo '```'
} >>"$summary"
exit 0
