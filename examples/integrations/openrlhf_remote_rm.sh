#!/usr/bin/env bash
# OpenRLHF PPO with a rewardkit reward model served over HTTP (--remote_rm_url).
#
#   RM=exported/rm POLICY=Qwen/Qwen2.5-0.5B-Instruct PROMPTS=prompts.jsonl bash examples/integrations/openrlhf_remote_rm.sh
#
# `rewardkit serve` answers POST /get_reward with OpenRLHF's remote reward-model protocol: the body
# {"query": [prompt + response text, ...], "prompts": [...], "labels": [...]} (older OpenRLHF sends only "query"),
# the reply {"rewards": [...], "scores": [...], "extra_logs": {...}}; OpenRLHF reads "rewards". A query that is
# chat-template text is scored as those messages (not templated twice). tests/integration/test_integration_examples.py
# starts the server line below on 127.0.0.1 and posts to the URL of the training line.
set -euo pipefail
RM=${RM:?a rewardkit export directory}
POLICY=${POLICY:?the policy model}
PROMPTS=${PROMPTS:?a prompt data set OpenRLHF reads}
RM_PORT=${RM_PORT:-5000}
# a bearer token is optional: `rewardkit serve` reads it from $REWARDKIT_API_KEY; OpenRLHF sends none, so keep the
# port on a private network (or leave REWARDKIT_API_KEY empty as here)
REWARDKIT_API_KEY= rewardkit serve "$RM" --host 0.0.0.0 --port "$RM_PORT" &
RM_PID=$!
trap 'kill $RM_PID' EXIT
until curl -sf "http://127.0.0.1:$RM_PORT/health" >/dev/null; do sleep 2; done

python -m openrlhf.cli.train_ppo_ray \
  --pretrain "$POLICY" \
  --remote_rm_url "http://127.0.0.1:$RM_PORT/get_reward" \
  --prompt_data "$PROMPTS" --input_key prompt --apply_chat_template \
  --actor_num_gpus_per_node 1 --vllm_num_engines 1 --vllm_tensor_parallel_size 1 \
  --micro_train_batch_size 4 --train_batch_size 64 --micro_rollout_batch_size 8 --rollout_batch_size 64 \
  --max_epochs 1 --prompt_max_len 1024 --generate_max_len 512 --zero_stage 2 --bf16 \
  --actor_learning_rate 5e-7 --critic_learning_rate 9e-6 --init_kl_coef 0.01 \
  --save_path "${SAVE:-ckpt/ppo-rewardkit-rm}"
