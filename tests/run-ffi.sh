#!/usr/bin/env bash
# The C ABI end to end: builds libmsbimage.so and the test registry (debug), installs the
# library once with ffi/install.sh into target/debug/ffi-prefix and checks that installed tree
# (file names, soname, pkg-config, a program linked only through pkg-config), compiles the C
# tests (tests/c/test_*.c, plain C11) against the installed library with
# `pkg-config --cflags --libs msbimage` and runs each plainly and under valgrind, then runs
# `gofmt`, `go vet` and `go test -race` in bindings/go, which finds the library through
# `#cgo pkg-config: msbimage` and PKG_CONFIG_PATH.
# Prints "N passed, M failed" for the C test cases (both runs) and the install and example
# checks as its last line; exits non-zero when anything failed.
# No `set -e`: a failing step is counted and reported, and the run goes on.
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

prefix="$root/target/debug/ffi-prefix"
lib="$prefix/lib"
out="$root/target/debug/ffi-tests"
mkdir -p "$out"
# The crate's version as cargo sees it (ffi/install.sh reads Cargo.toml itself).
version=$(cargo pkgid -p msbimage-ffi | sed 's/.*[@#]//')
echo "== ffi: install into target/debug/ffi-prefix"
# Installed once, from scratch, as a user would; everything below uses only this tree.
rm -rf "$prefix"
bash ffi/install.sh --debug --no-build --prefix "$prefix" || exit 1
export PKG_CONFIG_PATH="$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
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

# check LOG WHAT COMMAND...: one named case, printed as "ok - WHAT" or "not ok - WHAT" and
# counted with the C test cases; COMMAND's output goes to LOG, whose tail is shown on failure.
check() {
  local log=$1 what=$2
  shift 2
  if "$@" >>"$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok - $what"
  else
    failed=$((failed + 1))
    failures+=("$what")
    echo "not ok - $what"
    sed 's/^/    | /' "$log" | tail -n 20
  fi
}

echo "== ffi: the installed tree"
: >"$out/install.log"
install_case() { check "$out/install.log" "install: $1" "${@:2}"; }
# The real file, and both links resolving to it through relative targets (so a staged tree
# can be moved into place).
installed_names() {
  local real="$lib/libmsbimage.so.$version" name
  [[ -f $real && ! -L $real ]] || { echo "$real is missing or a link"; return 1; }
  for name in libmsbimage.so.0 libmsbimage.so; do
    [[ -L $lib/$name ]] || { echo "$lib/$name is not a link"; return 1; }
    [[ $(readlink "$lib/$name") != /* ]] || { echo "$lib/$name is an absolute link"; return 1; }
    [[ $(readlink -f "$lib/$name") == "$(readlink -f "$real")" ]] ||
      { echo "$lib/$name resolves to $(readlink -f "$lib/$name"), not $real"; return 1; }
  done
  ls -l "$lib"
}
# (Outputs are captured, printed into the log, then matched: `… | tee | grep -q` can fail
# under pipefail when grep exits first and tee gets SIGPIPE.)
installed_soname() {
  local dynamic
  dynamic=$(readelf -d "$lib/libmsbimage.so.$version") || return 1
  grep -F '(SONAME)' <<<"$dynamic"
  [[ $dynamic == *'(SONAME)'*'Library soname: [libmsbimage.so.0]'* ]]
}
installed_pkg_config() {
  local got want
  got=$(pkg-config --modversion msbimage) || return 1
  [[ $got == "$version" ]] || { echo "modversion $got, crate version $version"; return 1; }
  got=$(pkg-config --variable=prefix msbimage)
  [[ $got == "$prefix" ]] || { echo "pkg-config found the msbimage.pc of $got, not $prefix"; return 1; }
  got=$(pkg-config --cflags --libs msbimage | xargs)
  want="-I$prefix/include -L$lib -lmsbimage"
  [[ $got == "$want" ]] || { echo "pkg-config --cflags --libs: '$got', expected '$want'"; return 1; }
}
# A program that knows nothing but `pkg-config msbimage`: compiled in a directory of its own,
# it must load libmsbimage.so.0 from the prefix, and the header and library must agree.
installed_program() {
  local dir="$out/pkg-config-program" flags
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/program.c" <<'EOF_C'
#include <msbimage.h>
#include <stdio.h>

int main(void) {
    if (msb_abi_version() != MSB_ABI_VERSION) {
        fprintf(stderr, "library ABI %u, header ABI %u\n", msb_abi_version(), MSB_ABI_VERSION);
        return 1;
    }
    msb_cache *cache = NULL;
    if (msb_cache_open(NULL, &cache) != MSB_STATUS_INVALID_ARGUMENT || cache != NULL) return 1;
    puts(msb_version());
    return 0;
}
EOF_C
  read -ra flags < <(pkg-config --cflags --libs msbimage) || return 1
  (cd "$dir" && cc -std=c11 -Wall -Wextra -Werror program.c "${flags[@]}" -Wl,-rpath,"$lib" \
    -o program) || return 1
  local dynamic loaded
  dynamic=$(readelf -d "$dir/program") || return 1
  grep -F '(NEEDED)' <<<"$dynamic"
  [[ $dynamic == *'(NEEDED)'*'Shared library: [libmsbimage.so.0]'* ]] ||
    { echo "program does not need libmsbimage.so.0"; return 1; }
  loaded=$(ldd "$dir/program") || return 1
  printf '%s\n' "$loaded"
  [[ $loaded == *"libmsbimage.so.0 => $lib/libmsbimage.so.0 "* ]] ||
    { echo "libmsbimage.so.0 is not loaded from $lib"; return 1; }
  [[ $("$dir/program") == "$version" ]] || { echo "msb_version() is not $version"; return 1; }
}
# --destdir stages the same tree elsewhere while msbimage.pc names the final prefix.
installed_staged() {
  local stage="$out/stage" final=/nonexistent/msbimage-staged
  rm -rf "$stage"
  bash ffi/install.sh --debug --no-build --prefix "$final" --destdir "$stage" || return 1
  (cd "$stage$final" && find . | sort) || return 1
  [[ -f $stage$final/lib/libmsbimage.so.$version && -f $stage$final/include/msbimage.h ]] || return 1
  [[ $(readlink -f "$stage$final/lib/libmsbimage.so") == "$stage$final/lib/libmsbimage.so.$version" ]] || return 1
  grep -qx "prefix=$final" "$stage$final/lib/pkgconfig/msbimage.pc" || return 1
  [[ ! -e $final ]] || { echo "$final was written to"; return 1; }
  rm -rf "$stage"
}
install_case "libmsbimage.so.$version, .so.0 and .so resolve" installed_names
install_case "soname is libmsbimage.so.0" installed_soname
install_case "include/msbimage.h is the committed header" cmp include/msbimage.h "$prefix/include/msbimage.h"
install_case "pkg-config finds msbimage $version in the prefix" installed_pkg_config
install_case "a program linked only through pkg-config runs" installed_program
install_case "--destdir stages the tree for the final prefix" installed_staged

echo "== ffi: C tests"
# Only what the installed tree provides (pkg-config), plus the tests' own harness.
read -ra msb_flags < <(pkg-config --cflags --libs msbimage)
cflags=(-std=c11 -Wall -Wextra -Werror -g -I"$root/tests/c")
ldflags=("${msb_flags[@]}" -Wl,-rpath,"$lib" -lpthread)
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
example_case() { check "$out/example.log" "example: $1" "${@:2}"; }
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
    # The package finds the header and library through `#cgo pkg-config: msbimage`
    # (PKG_CONFIG_PATH, exported above); the rpath lets the test binary load it.
    export CGO_ENABLED=1 CGO_LDFLAGS="-Wl,-rpath,$lib"
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
