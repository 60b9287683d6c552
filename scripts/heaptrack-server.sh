#!/bin/sh
# Runs its arguments (a carelake server command line) under heaptrack's malloc tracer, keeping
# the process id, for `carelake bench soak --server-wrapper scripts/heaptrack-server.sh`.
# The server must be built with the system allocator (mimalloc is invisible to malloc tracers):
#   cargo build --bin carelake --features carelake-cli/system-allocator
# The raw trace goes to $HEAPTRACK_RAW (default /tmp/carelake-server.heaptrack.raw; about 1.5 GB
# a minute of a debug-build soak). Read it afterwards with
#   /usr/lib/heaptrack/libexec/heaptrack_interpret < RAW | zstd > trace.zst
#   heaptrack_print -f trace.zst --print-massif heap.massif   # live heap over time
# (`heaptrack -p PID`, attaching to a running server, crashed the server when tried.)
set -eu
preload=/usr/lib/heaptrack/libheaptrack_preload.so
if [ ! -e "$preload" ]; then
    echo "heaptrack-server.sh: $preload not found (apt-get install heaptrack)" >&2
    exit 1
fi
LD_PRELOAD="$preload${LD_PRELOAD:+:$LD_PRELOAD}"
DUMP_HEAPTRACK_OUTPUT="${HEAPTRACK_RAW:-/tmp/carelake-server.heaptrack.raw}"
export LD_PRELOAD DUMP_HEAPTRACK_OUTPUT
exec "$@"
