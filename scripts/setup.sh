#!/usr/bin/env bash
# Create or refresh .venv/ with everything the project needs. Fast when nothing changed:
# a stamp records the hash of the inputs that decide what gets installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# A GPU user picks another torch build, e.g. HUME_TORCH_SPEC="torch==2.13.0" with
# HUME_TORCH_INDEX_URL pointing at a CUDA wheel index.
TORCH_SPEC="${HUME_TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX_URL="${HUME_TORCH_INDEX_URL:-}"
PYTHON="${HUME_PYTHON:-python3}"
VENV=.venv

# Headless EGL rendering for MuJoCo needs these Debian packages.
EGL_PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${EGL_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages for headless rendering: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: WARNING: missing Debian packages for headless rendering: ${missing[*]}" >&2
    echo "setup: run 'sudo apt-get install ${missing[*]}' (simulation needs them; the rest works without)" >&2
  fi
fi

# The simulators that need Python environments of their own (Meta-World): .venv-<name>/.
bash scripts/setup_sim_envs.sh

stamp_inputs() {
  cat pyproject.toml scripts/setup.sh
  echo "$TORCH_SPEC $TORCH_INDEX_URL"
}
want=$(stamp_inputs | sha256sum | cut -d' ' -f1)
stamp="$VENV/.hume-setup-stamp"
if [ -x "$VENV/bin/hume" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# This machine's pip config names local mirrors that may be absent; their warnings are noise.
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
# torch first and pinned: any other route to torch pulls the CUDA build here.
if [ -n "$TORCH_INDEX_URL" ]; then
  quiet "${pip[@]}" "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
  quiet "${pip[@]}" "$TORCH_SPEC"
fi
quiet "${pip[@]}" -e ".[dev]"
# openpi-client pins numpy<2 in its metadata only; its real needs come with our extras.
quiet "${pip[@]}" --no-deps "openpi-client==0.1.2"
echo "$want" > "$stamp"
echo "setup: .venv ready"
