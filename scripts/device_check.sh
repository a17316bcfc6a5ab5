#!/usr/bin/env bash
# Everything that needs a GPU, in one run of at most 8 minutes on one GPU: the paper-size policy's
# think (N = 1/5/10) and refine in bf16, eager and fast; System 2 serving 1/8/32 clients; one
# training step per stage (full and LoRA) with peak memory; one sharded (FSDP) step; the System-1
# tick with and without CUDA graphs. Writes device-check.json and device_check.md (a table headed
# with the device's name) to --output (default outputs/device_check/) and prints the table.
#
#   scripts/device_check.sh                 # on a machine with a GPU: run this first
#   scripts/device_check.sh --smoke         # the same steps, tiny, on the CPU (seconds; the tests run it)
#   scripts/device_check.sh --steps='[think-eager, s2-batching]' --output=DIR
#
# Options are those of `hume bench device-check --help` (docs/benchmarks.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
# This checkout's code, whatever else is installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${HUME_PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m hume.cli.main bench device-check "$@"
