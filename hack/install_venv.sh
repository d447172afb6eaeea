#!/usr/bin/env bash
# Create .venv and install the project from requirements.lock, one line per step with its elapsed
# time: the first install on a fresh machine downloads torch & co. for minutes, and a silent wait
# looks like a hang. Usage (from the Makefile): hack/install_venv.sh PYTHON VENV
set -euo pipefail
python=${1:?usage: install_venv.sh PYTHON VENV}
venv=${2:?usage: install_venv.sh PYTHON VENV}

step() {  # step "what" command...: run it, then print how long it took
  local what=$1 started=$SECONDS
  shift
  echo "python: ${what} …"
  "$@"
  echo "python: ${what}: done in $((SECONDS - started))s"
}

if [[ ! -x ${venv}/bin/python ]]; then
  step "creating ${venv}" "${python}" -m venv "${venv}"
fi
step "installing uv" "${venv}/bin/pip" install --quiet --disable-pip-version-check uv
# uv prints one line per phase (resolved, prepared, installed) with its own timing.
step "installing requirements.lock (first time: several minutes, torch is large)" \
  "${venv}/bin/uv" pip install --no-progress --python "${venv}/bin/python" -r requirements.lock
step "installing the project (editable) and the local-cluster harness" \
  "${venv}/bin/uv" pip install --quiet --python "${venv}/bin/python" --no-deps -e . -e hack
