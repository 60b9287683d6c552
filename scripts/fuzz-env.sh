# Sourced by fuzz-smoke.sh and fuzz.sh: cargo-fuzz (installed into the cache once) and the
# environment its builds need.
cache="${CARELAKE_CI_CACHE:-$HOME/.cache/carelake}"
tools="$cache/tools"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $tools"
    cargo install cargo-fuzz --locked --version 0.13.2 --root "$tools" --quiet
fi
# cargo-fuzz passes nightly -Z flags (sanitizer, coverage); on the stable toolchain
# RUSTC_BOOTSTRAP=1 lets rustc accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$cache/fuzz-target"
