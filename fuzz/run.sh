#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 60), one after the other.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`); without
# them it says so and exits 0, so that it can sit in any script. Each target starts from
# fuzz/corpus/<target>/ and writes the inputs it finds to fuzz/target/corpus/<target>/ (not
# committed; see fuzz/README.md for keeping a few). A crash stops that target and is
# written to fuzz/artifacts/<target>/; the script carries on with the next target and exits
# 1 at the end if any target crashed. Set CARGO_TARGET_DIR to keep fuzz builds apart from
# the workspace's (they use other compiler flags).
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz/run.sh: no nightly toolchain (rustup toolchain install nightly); not fuzzing"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked); not fuzzing"
    exit 0
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

crashed=()
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "target/corpus/$target"
    if ! cargo +nightly fuzz run "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1; then
        crashed+=("$target")
    fi
done

if [[ ${#crashed[@]} -gt 0 ]]; then
    echo "crashed: ${crashed[*]} (inputs in fuzz/artifacts/<target>/; see fuzz/README.md)" >&2
    exit 1
fi
echo "no crash in ${#targets[@]} targets, ${seconds}s each"
