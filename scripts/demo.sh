#!/usr/bin/env bash
# Set up (idempotent) and run the main job end to end on the embedded defaults.
# Extra arguments go to `omniembed demo` (see `omniembed demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/omniembed demo "$@"
