#!/usr/bin/env bash
# The C ABI end to end: builds libmsbimage.so and the test registry (debug), lays out the
# library with its soname links, compiles the C tests (tests/c/test_*.c, plain C11) and runs
# each plainly and under valgrind, then runs `go vet` and `go test -race` in bindings/go.
# Prints "N passed, M failed" for the C test cases (both runs) as its last line; exits non-zero
# when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=local
# Go needs a build cache; without HOME (some CI shells) keep it under target/.
if [[ -z ${HOME:-} && -z ${XDG_CACHE_HOME:-} && -z ${GOCACHE:-} ]]; then
  export GOCACHE="$root/target/go-build" GOPATH="$root/target/go"
fi

echo "== ffi: cargo build (debug)"
cargo build --workspace --features microsandbox-image/cli || exit 1

lib="$root/target/debug/ffi-lib"
out="$root/target/debug/ffi-tests"
mkdir -p "$lib" "$out"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# A Rust cdylib gets no versioned file names: lay them out as a system would.
ln -sfn ../libmsbimage.so "$lib/libmsbimage.so.$version"
ln -sfn "libmsbimage.so.$version" "$lib/libmsbimage.so.0"
ln -sfn libmsbimage.so.0 "$lib/libmsbimage.so"
export MSB_TESTKIT="$root/target/debug/msbimage-testkit"

passed=0
failed=0
failures=()

# run NAME MODE COMMAND...: runs one test program, counts its "ok"/"not ok" lines, and counts a
# crash, a timeout or a valgrind error (a non-zero exit with every case passing) as a failure.
run() {
  local name=$1 mode=$2
  shift 2
  local log="$out/$name.$mode.log"
  timeout 900 "$@" >"$log" 2>&1
  local rc=$?
  local ok bad
  ok=$(grep -c '^ok - ' "$log")
  bad=$(grep -c '^not ok - ' "$log")
  passed=$((passed + ok))
  failed=$((failed + bad))
  if ((rc != 0 && bad == 0)); then
    failed=$((failed + 1))
    failures+=("$name ($mode): exit code $rc")
  fi
  ((bad > 0)) && failures+=("$name ($mode): $bad case(s) failed")
  printf '%-16s %-8s %3d ok, %d failed (exit %d)\n' "$name" "$mode" "$ok" "$bad" "$rc"
  if ((rc != 0 || bad > 0)); then
    sed 's/^/    | /' "$log" | tail -n 60
  fi
  if [[ $mode == valgrind ]]; then
    grep -E 'ERROR SUMMARY|definitely lost|possibly lost' "$log" | sed 's/^==[0-9]*== */    valgrind: /'
  fi
}

echo "== ffi: C tests"
cflags=(-std=c11 -Wall -Wextra -Werror -g -I"$root/include" -I"$root/tests/c")
ldflags=(-L"$lib" -Wl,-rpath,"$lib" -lmsbimage -lpthread)
programs=()
for src in tests/c/test_*.c; do
  name=$(basename "$src" .c)
  if cc "${cflags[@]}" "$src" tests/c/harness.c "${ldflags[@]}" -o "$out/$name"; then
    programs+=("$name")
  else
    failed=$((failed + 1))
    failures+=("$name: does not compile")
  fi
done
for name in "${programs[@]}"; do
  run "$name" plain "$out/$name"
done
for name in "${programs[@]}"; do
  run "$name" valgrind valgrind --leak-check=full --errors-for-leak-kinds=definite,possible \
    --suppressions="$root/tests/c/valgrind.supp" --error-exitcode=1 "$out/$name"
done

echo "== ffi: the README example"
# tests/c/example.c is the example in ffi/README.md: it must match, compile and pull.
example_case() {
  local what=$1
  shift
  if "$@" >>"$out/example.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok - example: $what"
  else
    failed=$((failed + 1))
    failures+=("example: $what")
    echo "not ok - example: $what"
    sed 's/^/    | /' "$out/example.log" | tail -n 20
  fi
}
: >"$out/example.log"
readme_example() { awk '/^```c$/{p=1; next} /^```$/{p=0} p' ffi/README.md; }
example_case "ffi/README.md shows tests/c/example.c" diff <(readme_example) tests/c/example.c
example_case "compiles" cc "${cflags[@]}" tests/c/example.c "${ldflags[@]}" -o "$out/example"
pull_example() {
  local dir host rc
  dir=$(mktemp -d)
  coproc KIT { exec "$MSB_TESTKIT" serve --push-fixtures; }
  local line
  read -r line <&"${KIT[0]}"
  host=$(sed -n 's/.*"host":"\([^"]*\)".*/\1/p' <<<"$line")
  "$out/example" "$host/fixtures/multi:latest" "$dir" linux/arm/v7 &&
    "$out/example" "$host/fixtures/multi:latest" "$dir" linux/arm/v7 | grep -q cached
  rc=$?
  exec {KIT[1]}>&-
  wait "$KIT_PID"
  rm -rf "$dir"
  return $rc
}
example_case "pulls, then answers from the cache" pull_example

echo "== ffi: Go bindings"
go_status=0
if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed"
  go_status=1
else
  (
    cd bindings/go || exit 1
    export CGO_ENABLED=1 CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib"
    unformatted=$(gofmt -l .)
    if [[ -n $unformatted ]]; then
      echo "gofmt would change: $unformatted"
      exit 1
    fi
    go vet ./... || exit 1
    go test -race -count=1 -v ./... 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'
    exit "${PIPESTATUS[0]}"
  ) || go_status=1
fi

if ((${#failures[@]})); then
  printf 'failed: %s\n' "${failures[@]}"
fi
((go_status == 0)) || echo "failed: Go bindings (go vet / go test -race)"
echo "$passed passed, $failed failed"
((failed == 0 && go_status == 0))
