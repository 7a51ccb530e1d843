#!/usr/bin/env bash
# Shows that each regression test of issue 7 can fail: for every case, takes its fix out
# (test/regressions/<case>.patch, a tiny patch that brings back the old behaviour), rebuilds
# only the test's target, runs that one test and expects it to FAIL; then puts the fix back
# (git apply -R), rebuilds and expects the test to pass. Exits non-zero if a test still passes
# with its fix removed (or fails with it). Rebuilds, so it is not part of CI.
#
#   scripts/check-regressions.sh [CASE...]    # default: all six; BUILD_DIR (default build)
#
# Refuses to run in a dirty tree: the patches are applied to the working copy.
set -uo pipefail

cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

# case | build target | test executable (in $build/bin) | Catch2 test name
cases=(
  "nan-in-diff|test_backend_ops|test_backend_ops|the comparison fails on any NaN or Inf on either side"
  "skip-after-assert|test_core|test_core|a test may skip before its first assertion only"
  "gzip-bomb|test_data|test_data|image and label counts are compared from the headers before the images are inflated"
  "huge-checkpoint|test_cli|test_cli|a tiny checkpoint declaring a huge network is refused at once, in little memory"
  "shape-overflow|test_core|test_core|shape arithmetic refuses sizes that overflow 64 bits"
  "folder-fsync|test_core|test_core|write_file_atomic fsyncs the file, then its folder after the rename"
)

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "check-regressions: the working tree has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
  echo "check-regressions: no configured build in '$build' (run cmake first, or set BUILD_DIR)" >&2
  exit 2
fi

wanted=("$@")
bad=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs one test and prints its outcome: "pass", "fail" (an assertion failed) or "none" (it
# did not run: not found, crashed before reporting, skipped).
run_test() {
  local exe=$1 name=$2 rc
  # The huge-checkpoint case without its fix binds gigabytes: cap the address space (4 GiB)
  # so that it fails quickly instead of crowding the machine.
  (ulimit -v 4194304; "$build/bin/$exe" "${name//,/\\,}") >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && grep -q "All tests passed" "$log"; then echo pass
  elif [ $rc -ne 0 ] && grep -q "FAILED" "$log"; then echo fail
  else echo none; fi
}

# The first failed assertion and its expansion, on one line.
first_failure() {
  awk '/FAILED:/{if (f) exit; f=1; next} f&&/^(===|---|\.\.\.)/{exit} f&&NF{printf "%s ", $0; n++} n>=8{exit}' "$log" |
    tr -s ' ' | cut -c1-300
}

printf '| case | test | without the fix | with the fix |\n|---|---|---|---|\n' >"${RESULTS:-/dev/null}"
for spec in "${cases[@]}"; do
  IFS='|' read -r case target exe name <<<"$spec"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $case "* ]]; then continue; fi
  patch="test/regressions/$case.patch"
  echo "== $case: $name"
  if ! git apply "$patch"; then
    echo "   cannot apply $patch (the code has moved: update the patch)"; bad=1; continue
  fi
  if ! cmake --build "$build" --target "$target" >"$log" 2>&1; then
    echo "   build failed with $patch applied:"; tail -20 "$log"; git apply -R "$patch"; bad=1; continue
  fi
  case $(run_test "$exe" "$name") in
    fail) without="fails: $(first_failure)" ;;
    pass) without="PASSES (the test cannot see the old behaviour)"; bad=1 ;;
    *) without="DID NOT RUN: $(tail -3 "$log" | tr '\n' ' ')"; bad=1 ;;
  esac
  echo "   without the fix: $without"
  git apply -R "$patch" || { echo "   cannot take $patch back out: restore by hand"; exit 1; }
  if ! cmake --build "$build" --target "$target" >"$log" 2>&1; then
    echo "   build failed with the fix restored:"; tail -20 "$log"; bad=1; continue
  fi
  case $(run_test "$exe" "$name") in
    pass) with="passes" ;;
    fail) with="FAILS: $(first_failure)"; bad=1 ;;
    *) with="DID NOT RUN: $(tail -3 "$log" | tr '\n' ' ')"; bad=1 ;;
  esac
  echo "   with the fix: $with"
  printf '| %s | %s: %s | %s | %s |\n' "$case" "$exe" "$name" "$without" "$with" >>"${RESULTS:-/dev/null}"
done

if [ $bad -ne 0 ]; then
  echo "check-regressions: at least one case did not behave (see above)" >&2
  exit 1
fi
echo "check-regressions: every regression test fails without its fix and passes with it"
