#!/usr/bin/env bash
# Builds every plugin in plugins/ into a WebAssembly component.
#
#   scripts/build-plugins.sh            # all plugins
#   scripts/build-plugins.sh noop blocklist   # some of them
#
# A plugin is a directory plugins/<name>/ with a Cargo.toml (package <name>)
# and a manifest plugins/<name>/<name>.toml.
#
# Output:
#   $CARGO_TARGET_DIR/plugins/<name>.wasm + <name>.toml   every plugin (test ones too)
#   plugins-dist/<name>.wasm + <name>.toml                the real plugins (copied when changed)
# with CARGO_TARGET_DIR defaulting to ~/.cache/chat-host/target (outside the
# clone, so that CI runs are incremental).
#
# Toolchain: `cargo build --target wasm32-wasip2` when rustup has that target
# (a normal developer machine: `rustup target add wasm32-wasip2`). Otherwise
# (rustup cannot download targets, e.g. CI without network) a fallback: Debian's
# rustc-web (apt, installed when missing) with -Zbuild-std for wasm32-wasip1
# against Debian's wasi-libc (wasip2 does not link there: no wasip2 libc),
# rust-lld from the rustup toolchain, and the WASI preview1 adapter. PLUGIN_TARGET=
# wasm32-unknown-unknown selects the other fallback target (smaller
# components, no WASI imports, panic messages lost). The Debian compiler is
# only ever set (RUSTC=...) on the plugin build's command line.
#
# Every component is built by the helper plugins/tools/componentize (the
# `wit-component` crate), which also checks that each SDK plugin exports
# exactly the hooks named in its `export_plugin!` line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-host/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
OUT=$CARGO_TARGET_DIR/plugins            # components + manifests
NATIVE_DIR=$CARGO_TARGET_DIR/plugins-native  # the helper (native build)
WASM_DIR=$CARGO_TARGET_DIR/plugins-wasm      # the plugin crates (wasm build)
DIST=$ROOT/plugins-dist
MANIFEST=$ROOT/plugins/Cargo.toml
# The plugins copied to plugins-dist/ (the others are for tests and benchmarks).
REAL_PLUGINS=(tiered-rate-limit contact-filter blocklist dispute-audit)

say() { echo "build-plugins: $*" >&2; }
die() { echo "build-plugins: ERROR: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
now() { date +%s%3N; }
T0=$(now)

# ---- which plugins
ALL=()
for dir in "$ROOT"/plugins/*/; do
  name=$(basename "$dir")
  [ -f "$dir/Cargo.toml" ] && [ -f "$dir/$name.toml" ] && ALL+=("$name")
done
if [ $# -gt 0 ]; then
  for n in "$@"; do [[ " ${ALL[*]} " == *" $n "* ]] || die "no plugin '$n' (have: ${ALL[*]})"; done
  PLUGINS=("$@")
else
  PLUGINS=("${ALL[@]}")
fi
[ ${#PLUGINS[@]} -gt 0 ] || die "no plugins found in plugins/"

# The rustup toolchain, never the Debian compiler, for anything native.
NATIVE_ENV=(env -u RUSTC -u RUSTC_BOOTSTRAP -u RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_ENCODED_RUSTFLAGS)
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"

# ---- the componentizing helper (native)
say "helper: componentize"
"${NATIVE_ENV[@]}" CARGO_TARGET_DIR="$NATIVE_DIR" \
  cargo build --quiet --release --locked --manifest-path "$MANIFEST" -p componentize
COMPONENTIZE=$NATIVE_DIR/release/componentize

# ---- the wasm build
PKGS=()
for n in "${PLUGINS[@]}"; do PKGS+=(-p "$n"); done

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  TARGET=wasm32-wasip2
  say "toolchain: rustup, target $TARGET"
  "${NATIVE_ENV[@]}" CARGO_TARGET_DIR="$WASM_DIR" \
    cargo build --release --locked --manifest-path "$MANIFEST" --target "$TARGET" "${PKGS[@]}"
else
  TARGET=${PLUGIN_TARGET:-wasm32-wasip1}
  case $TARGET in wasm32-wasip1 | wasm32-unknown-unknown) ;; *) die "PLUGIN_TARGET=$TARGET: use wasm32-wasip1 or wasm32-unknown-unknown" ;; esac
  say "toolchain: no wasm32-wasip2 in rustup; fallback: Debian rustc-web + -Zbuild-std, target $TARGET"
  missing=()
  for p in rustc-web rust-web-src wasi-libc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} or rustup target add wasm32-wasip2"
    say "installing ${missing[*]} (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  DEB_RUSTC=/usr/bin/rustc
  [ -x "$DEB_RUSTC" ] && [ -d /usr/lib/rustlib/src/rust/library ] || die "rustc-web / rust-web-src did not install $DEB_RUSTC and its library source"
  # rust-lld of the rustup toolchain, named rust-lld and wasm-ld first on PATH
  # (Debian's /usr/bin/rust-lld points to an lld that is not installed).
  sysroot=$("${NATIVE_ENV[@]}" "$(rustup which rustc 2>/dev/null || command -v rustc)" --print sysroot)
  lld=$sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld
  [ -x "$lld" ] || die "no rust-lld in the rustup toolchain ($lld)"
  mkdir -p "$WASM_DIR/bin"
  ln -sf "$lld" "$WASM_DIR/bin/rust-lld"
  ln -sf "$lld" "$WASM_DIR/bin/wasm-ld"
  flags=()
  [ "$TARGET" = wasm32-wasip1 ] && flags=(-L /usr/lib/wasm32-wasi -C link-self-contained=no)
  env -u CARGO_ENCODED_RUSTFLAGS PATH="$WASM_DIR/bin:$PATH" CARGO_TARGET_DIR="$WASM_DIR" \
    RUSTC_BOOTSTRAP=1 RUSTC="$DEB_RUSTC" RUSTFLAGS="${flags[*]}" \
    cargo build --release --locked --manifest-path "$MANIFEST" \
      -Zbuild-std=std,panic_abort --target "$TARGET" "${PKGS[@]}"
fi

# ---- componentize, check, collect
mkdir -p "$OUT"
printf '\n%-20s %9s  %-8s %s\n' plugin bytes status exports
for n in "${PLUGINS[@]}"; do
  core=$WASM_DIR/$TARGET/release/${n//-/_}.wasm
  [ -f "$core" ] || die "$n: no $core (is the crate a cdylib named $n?)"
  out=$OUT/$n.wasm
  # Always componentize (a few ms), replace only when the bytes changed: the
  # host may watch these files.
  "$COMPONENTIZE" new "$core" "$OUT/.$n.wasm.new" || die "$n: componentizing failed"
  if cmp -s "$OUT/.$n.wasm.new" "$out"; then
    rm -f "$OUT/.$n.wasm.new"; status=unchanged
  else
    mv -f "$OUT/.$n.wasm.new" "$out"; status=updated
  fi
  cmp -s "$ROOT/plugins/$n/$n.toml" "$OUT/$n.toml" || cp "$ROOT/plugins/$n/$n.toml" "$OUT/$n.toml"
  # SDK plugins: the component exports exactly the hooks of `export_plugin!(T: hooks)`.
  hooks=$(tr '\n' ' ' < "$ROOT/plugins/$n/src/lib.rs" \
    | grep -o 'export_plugin!([^)]*)' | head -1 | sed 's/^[^:]*://; s/)$//; s/[, ]\+/ /g; s/_/-/g' || true)
  if [ -n "$hooks" ]; then
    # shellcheck disable=SC2086
    "$COMPONENTIZE" check "$out" $hooks || die "$n: exports do not match export_plugin!($hooks)"
  fi
  exports=$("$COMPONENTIZE" wit "$out" | sed -n 's/^  export //p' | tr '\n' ' ')
  printf '%-20s %9s  %-8s %s\n' "$n" "$(stat -c %s "$out")" "$status" "$exports"
done

# ---- the real plugins into plugins-dist/ (only when changed: the host watches it)
mkdir -p "$DIST"
for n in "${REAL_PLUGINS[@]}"; do
  [ -f "$OUT/$n.wasm" ] || continue
  for ext in toml wasm; do
    cmp -s "$OUT/$n.$ext" "$DIST/$n.$ext" \
      || { cp "$OUT/$n.$ext" "$DIST/.$n.$ext.tmp" && mv -f "$DIST/.$n.$ext.tmp" "$DIST/$n.$ext"; }
  done
done

ms=$(( $(now) - T0 ))
printf '\nbuild-plugins: %d plugin(s), target %s, in %d.%01d s\n' "${#PLUGINS[@]}" "$TARGET" $((ms / 1000)) $((ms % 1000 / 100))
echo "  components: $OUT/"
echo "  real plugins: $DIST/ (${REAL_PLUGINS[*]})"
