#!/usr/bin/env bash
# Build the peers' environments for `refprune peers`, outside refprune's own:
#   DIR/peers-torch  torch 2.13.0 (CPU) first, then llm-compressor, torchao 0.18.0, Torch-Pruning
#   DIR/peers-tf     TensorFlow, tf-keras, TensorFlow Model Optimization
# DIR is the first argument, else $REFPRUNE_PEERS_VENVS, else ~/.cache/refprune-peers.
# Then: refprune peers --venvs DIR   (torch-ao needs nothing new: it runs in refprune's own environment)
set -euo pipefail
dir=${1:-${REFPRUNE_PEERS_VENVS:-$HOME/.cache/refprune-peers}}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

"$python" -m venv "$dir/peers-torch"
# torch first and pinned again in the file: an unpinned torch would pull a multi-GB CUDA build
"$dir/peers-torch/bin/pip" install torch==2.13.0
"$dir/peers-torch/bin/pip" install -r "$here/peers-torch.txt"
"$dir/peers-torch/bin/python" -c "import torch, sys; v = torch.__version__; print('peers-torch: torch', v); sys.exit(not v.startswith('2.13.0'))"

"$python" -m venv "$dir/peers-tf"
"$dir/peers-tf/bin/pip" install -r "$here/peers-tf.txt"
echo "built $dir/peers-torch and $dir/peers-tf; run: refprune peers --venvs $dir"
