#!/usr/bin/env bash
# Installs each peer framework into its own virtual environment beside this script (on demand:
# benchmarks/compare.py runs it when a venv is missing). CPU builds; nothing of tfmeta's.
#   bash benchmarks/peers/setup.sh torch     # .venv-torch: PyTorch (torch.func)
#   bash benchmarks/peers/setup.sh jax       # .venv-jax: JAX (jit, vmap), optax
set -euo pipefail
cd "$(dirname "$0")"
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(torch jax)
for peer in "${peers[@]}"; do
  venv=".venv-$peer"
  [ -x "$venv/bin/python" ] && continue
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  case "$peer" in
    torch) "$venv/bin/pip" install --quiet torch numpy ;;
    jax) "$venv/bin/pip" install --quiet "jax[cpu]" optax numpy ;;
    *) echo "unknown peer $peer (torch, jax)" >&2; exit 2 ;;
  esac
done
