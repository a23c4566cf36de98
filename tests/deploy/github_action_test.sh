#!/usr/bin/env bash
# deploy/github/: checks the composite action's shape (every input and step
# output it uses is declared or written) and runs its shell part (run.sh)
# against a real local agent: a passing run, a failing step, a bad plan.
# For CTest (label `deploy`). GitHub itself is not available here.
#
# Usage: tests/deploy/github_action_test.sh BUILD_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "$1" && pwd)"
work="$(mktemp -d)"
agent_pid=""
cleanup() {
  if [[ -n "$agent_pid" ]] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -INT "$agent_pid"; wait "$agent_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. The action's shape.
/usr/bin/python3 - "$root/deploy/github/action.yml" "$root/deploy/github/run.sh" <<'PY'
import re, sys, yaml
action = yaml.safe_load(open(sys.argv[1]))
script = open(sys.argv[2]).read()
text = open(sys.argv[1]).read()
assert action["runs"]["using"] == "composite", "not a composite action"
declared = set(action["inputs"])
used = set(re.findall(r"inputs\.([a-z-]+)", text))
assert used <= declared, f"undeclared inputs: {used - declared}"
written = set(re.findall(r'echo "([a-z-]+)=', script))
outs = set(re.findall(r"steps\.run\.outputs\.([a-z-]+)", text))
assert outs <= written, f"outputs run.sh never writes: {outs - written}"
for name in action["outputs"]:
    assert action["outputs"][name]["value"], name
for step in action["runs"]["steps"]:
    assert "shell" in step or "uses" in step, step
print("action.yml: inputs", sorted(declared), "outputs", sorted(written))
PY

# 2. run.sh against a real agent (perf backend).
command -v perf >/dev/null || { echo "SKIP: perf is not installed (deploy/install_deps.sh)"; exit 77; }
"$build/agent/labtrace-agent" --listen 127.0.0.1:0 --port-file "$work/port" \
  --data-dir "$work/agent" --exec-allow /bin/sh --log-level warn &
agent_pid=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || fail "the agent did not start"
printf 'hosts:\n  - name: lab1\n    address: 127.0.0.1:%s\n' \
  "$(head -n1 "$work/port")" >"$work/inventory.yaml"
plan() {  # plan FILE EXIT_CODE_OF_THE_TEST_STEP
  cat >"$1" <<PLAN
run: gh
defaults: {profile: sched, run_on: agent, timeout: 1m, stop_timeout: 1m}
tests:
  - name: step_one
    command: [/bin/sh, -c, "echo hello from step one; exit $2"]
PLAN
}
run_action() {  # run_action NAME PLAN -> $work/NAME.{out,summary}
  : >"$work/$1.out"; : >"$work/$1.summary"
  (cd "$work" && LABTRACE="$build/controller/labtrace" LABTRACE_PLAN="$2" \
    LABTRACE_INVENTORY="$work/inventory.yaml" LABTRACE_OUT=runs \
    LABTRACE_RUN_ID="gh-$1" LABTRACE_ARGS="--lease 0" \
    GITHUB_OUTPUT="$work/$1.out" GITHUB_STEP_SUMMARY="$work/$1.summary" \
    bash "$root/deploy/github/run.sh" >"$work/$1.log" 2>&1) ||
    { cat "$work/$1.log"; fail "run.sh must exit 0 (it exited $?)"; }
}
expect() { grep -qxF "$2" "$work/$1" || { cat "$work/$1"; fail "$1 lacks: $2"; }; }

plan "$work/pass.yaml" 0
run_action pass "$work/pass.yaml"
expect pass.out "exit-code=0"
expect pass.out "run-dir=runs/gh-pass"
expect pass.out "junit=runs/gh-pass/junit.xml"
[[ -f "$work/runs/gh-pass/manifest.json" ]] || fail "no manifest"
grep -q 'name="step_one@lab1"' "$work/runs/gh-pass/junit.xml" || fail "junit testcase"
grep -q '^### labtrace run `gh-pass`: passed' "$work/pass.summary" || fail "summary"

plan "$work/fail.yaml" 7
run_action fail "$work/fail.yaml"
expect fail.out "exit-code=4"
grep -q '<failure' "$work/runs/gh-fail/junit.xml" || fail "no <failure> in junit"
grep -q 'some step failed' "$work/fail.summary" || fail "summary of a failure"

echo "not: a plan" >"$work/bad.yaml"
run_action bad "$work/bad.yaml"
expect bad.out "exit-code=2"
expect bad.out "run-dir="
expect bad.out "junit="
echo "ok: action.yml and run.sh (pass, failing step, bad plan)"
