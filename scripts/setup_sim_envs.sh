#!/usr/bin/env bash
# Create or refresh the simulators' own Python environments (.venv-<name>/ in the repo root), each
# from its pinned requirements in envs/<name>.txt. A simulator whose packages cannot share .venv
# (Meta-World pins mujoco 3.3.0, robosuite 1.5 needs mujoco < 3.10; LIBERO needs robosuite 1.4 with
# mujoco 3.17) runs in its own environment behind the env server (sim/remote/). Fast when nothing changed: a stamp records the
# hash of the pins. HUME_SIM_ENVS="" skips them all; HUME_SIM_ENVS="metaworld" picks some.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${HUME_PYTHON:-python3}"
ENVS="${HUME_SIM_ENVS-metaworld robosuite}"
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }

for name in $ENVS; do
  pins="envs/$name.txt"
  venv=".venv-$name"
  [ -f "$pins" ] || { echo "setup: no pins for simulator environment '$name' ($pins)" >&2; exit 1; }
  want=$(cat "$pins" scripts/setup_sim_envs.sh | sha256sum | cut -d' ' -f1)
  stamp="$venv/.hume-setup-stamp"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    continue
  fi
  start=$(date +%s)
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  quiet "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$pins"
  echo "$want" > "$stamp"
  echo "setup: $venv ready ($(( $(date +%s) - start )) s)"
done
