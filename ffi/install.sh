#!/usr/bin/env bash
# Installs the C library libmsbimage under a prefix, laid out as a system library:
#
#   LIBDIR/libmsbimage.so.VERSION       the library (VERSION from the workspace Cargo.toml)
#   LIBDIR/libmsbimage.so.0             -> libmsbimage.so.VERSION (the soname: what programs load)
#   LIBDIR/libmsbimage.so               -> libmsbimage.so.0 (what `cc -lmsbimage` finds)
#   INCLUDEDIR/msbimage.h               the committed header (include/msbimage.h)
#   LIBDIR/pkgconfig/msbimage.pc        for `pkg-config --cflags --libs msbimage` and cgo
#
# It builds the cdylib with cargo first (`cargo build -p msbimage-ffi`, release by default), or
# with --no-build takes the one already in the target directory.
#
#   ffi/install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR] [--release|--debug]
#                  [--no-build] [--destdir DIR]
#
# --prefix defaults to /usr/local; --libdir to PREFIX/lib and --includedir to PREFIX/include
# (relative ones are taken under PREFIX). --destdir (or $DESTDIR) stages the files under DIR
# while msbimage.pc still names the final PREFIX, as packagers expect. The target directory is
# the one cargo uses ($CARGO_TARGET_DIR or the workspace's target/). Prints what it installed.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "$0"
}

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
libdir=""
includedir=""
profile=release
build=1
destdir=${DESTDIR:-}

need_arg() {
  if (($# < 2)) || [[ -z $2 ]]; then
    echo "install.sh: $1 needs a value" >&2
    exit 2
  fi
}
while (($#)); do
  case $1 in
    --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --libdir) need_arg "$@"; libdir=$2; shift 2 ;;
    --libdir=*) libdir=${1#*=}; shift ;;
    --includedir) need_arg "$@"; includedir=$2; shift 2 ;;
    --includedir=*) includedir=${1#*=}; shift ;;
    --destdir) need_arg "$@"; destdir=$2; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --release) profile=release; shift ;;
    --debug) profile=debug; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Absolute paths: the .pc file must not depend on where it was generated from.
absolute() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "${2%/}" "$1" ;;
  esac
}
prefix=$(absolute "$prefix" "$PWD")
prefix=${prefix%/}
[[ -n $prefix ]] || prefix=/
libdir=$(absolute "${libdir:-lib}" "$prefix")
includedir=$(absolute "${includedir:-include}" "$prefix")
if [[ -n $destdir ]]; then
  destdir=$(absolute "$destdir" "$PWD")
  destdir=${destdir%/}
fi

# The version of the [workspace.package] table: the real name's libmsbimage.so.<version>.
version=$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' "$root/Cargo.toml")
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
  echo "install.sh: no version in [workspace.package] of $root/Cargo.toml" >&2
  exit 1
fi

cd "$root"
if ((build)); then
  if [[ $profile == release ]]; then
    cargo build --release -p msbimage-ffi
  else
    cargo build -p msbimage-ffi
  fi
fi
target_dir=${CARGO_TARGET_DIR:-}
if [[ -z $target_dir ]]; then
  # Whatever cargo uses (a build.target-dir in .cargo/config.toml included).
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
fi
target_dir=$(absolute "${target_dir:-target}" "$root")
built="$target_dir/$profile/libmsbimage.so"
if [[ ! -f $built ]]; then
  echo "install.sh: $built does not exist (build it with cargo build -p msbimage-ffi$([[ $profile == release ]] && echo ' --release'), or drop --no-build)" >&2
  exit 1
fi

# The soname that ffi/build.rs gave the library: the .so.N link must carry exactly that name.
soname=""
if command -v readelf >/dev/null 2>&1; then
  soname=$(readelf -d "$built" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  if [[ ! $soname =~ ^libmsbimage\.so\.[0-9]+$ ]]; then
    echo "install.sh: $built has soname '$soname', expected libmsbimage.so.N (see ffi/build.rs)" >&2
    exit 1
  fi
else
  soname=$(sed -n 's/.*-soname,\(libmsbimage\.so\.[0-9]*\).*/\1/p' "$root/ffi/build.rs" | head -n1)
  [[ -n $soname ]] || { echo "install.sh: no soname in ffi/build.rs" >&2; exit 1; }
fi
real="libmsbimage.so.$version"

stage_lib="$destdir$libdir"
stage_inc="$destdir$includedir"
stage_pc="$stage_lib/pkgconfig"
mkdir -p "$stage_lib" "$stage_inc" "$stage_pc"

# put SRC DIR NAME MODE: copies through a temporary name and renames it into place, so a process
# that has the old library mapped keeps its (unlinked) copy instead of seeing it truncated.
put() {
  local tmp="$2/.$3.tmp.$$"
  install -m "$4" "$1" "$tmp"
  mv -f "$tmp" "$2/$3"
}
put "$built" "$stage_lib" "$real" 0755
ln -sfn "$real" "$stage_lib/$soname"
ln -sfn "$soname" "$stage_lib/libmsbimage.so"
put "$root/include/msbimage.h" "$stage_inc" msbimage.h 0644

# ${prefix}-relative directories where possible, so the file reads like a distribution's.
pc_dir() {
  if [[ $1 == "$prefix" ]]; then
    printf '${prefix}\n'
  elif [[ $prefix != / && $1 == "$prefix"/* ]]; then
    printf '${prefix}%s\n' "${1#"$prefix"}"
  else
    printf '%s\n' "$1"
  fi
}
pc_tmp="$stage_pc/.msbimage.pc.tmp.$$"
cat >"$pc_tmp" <<EOF
prefix=$prefix
libdir=$(pc_dir "$libdir")
includedir=$(pc_dir "$includedir")

Name: msbimage
Description: Pull OCI images into a shared cache of ready-to-mount layers (C ABI of msbimage)
Version: $version
# A shared library only: its own dependencies (libc, libgcc_s, libm) are DT_NEEDED entries of
# libmsbimage.so.0, so neither Libs.private nor Requires.private is needed.
Libs: -L\${libdir} -lmsbimage
Cflags: -I\${includedir}
EOF
chmod 0644 "$pc_tmp"
mv -f "$pc_tmp" "$stage_pc/msbimage.pc"

echo "installed msbimage $version (soname $soname, $profile build) under ${destdir:+$destdir}$prefix:"
for f in "$stage_lib/$real" "$stage_lib/$soname" "$stage_lib/libmsbimage.so" \
  "$stage_inc/msbimage.h" "$stage_pc/msbimage.pc"; do
  if [[ -L $f ]]; then
    printf '  %s -> %s\n' "$f" "$(readlink "$f")"
  else
    printf '  %s\n' "$f"
  fi
done
