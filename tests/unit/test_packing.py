"""Packed rows (prompt once, responses as branches, several groups per row) give the padded computation's
rewards and gradients, for every architecture we support."""

import pytest
import torch

from rewardkit.data.collate import pad_batch
from rewardkit.data.packing import (
    attention_allowed,
    pack_groups,
    pack_pairs,
    padded_budget_batches,
    shared_prefix_length,
    shares_prefix,
    token_budget_batches,
)
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import Encoded, SequenceEncoder
from rewardkit.losses import token_level_pairwise
from rewardkit.models.heads import HeadSpec
from rewardkit.models.packed import packed_outputs, packed_rewards
from rewardkit.models.reward_model import model_from_config

from ..conftest import ARCH_TOKENIZER, DECODERS, REPO, load_test_tokenizer, tiny_config

# groups of responses to one prompt: pairs and a K = 3 ranked list, with responses of different lengths
GROUPS = [
    ("\n\nHuman: How do I bake bread?\n\nAssistant:",
     [" Mix flour, water, yeast and salt, knead, let it rise, then bake at 230C for about 30 minutes.",
      " I don't know."]),
    ("\n\nHuman: What is 2+2?\n\nAssistant:", [" 4.", " 5.", " It is four, because two and two make four."]),
    ("\n\nHuman: Tell me a joke about the sea, a short one please.\n\nAssistant:",
     [" Why did the ocean say nothing? It just waved.", " No."]),
    ("Q:", [" A", " B"]),
]


@pytest.fixture(scope="module")
def built():
    """Models and encoded groups built once per module (the qwen2 vocabulary makes building slow)."""
    return {}


def make(arch, tokenizer_dirs, built, spec=None):
    key = (arch, repr(spec))
    if key not in built:
        tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])
        kind = "encoder" if arch == "bert" else "decoder"
        torch.manual_seed(0)
        model = model_from_config(tiny_config(arch, len(tok)), kind, tok, spec)
        model.eval()  # no dropout (as in training, model.dropout: false); gradients still flow
        encoder, renderer = SequenceEncoder(tok, kind, 128), Renderer(tok, kind)
        groups = [[encoder.encode(renderer.render(p, r)) for r in responses] for p, responses in GROUPS]
        built[key] = model, tok, kind, groups
    return built[key]


def rewards_and_grads(model, fn):
    model.zero_grad(set_to_none=True)
    rewards = fn()
    # a weighted sum so every reward gets its own gradient weight (a plain sum would hide swapped rewards)
    weights = torch.linspace(-1.0, 2.0, rewards.shape[0])
    (rewards * weights).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


def assert_grads_close(got, want):
    assert got.keys() == want.keys()
    for name in want:
        scale = want[name].abs().max().clamp_min(1e-6)
        err = (got[name] - want[name]).abs().max() / scale
        assert err < 1e-4, f"{name}: relative gradient error {err:.2e}"


@pytest.mark.parametrize("arch", [*DECODERS, "bert"])
@pytest.mark.parametrize("row_tokens", [None, 256])
def test_packed_rewards_and_gradients_equal_padded(arch, row_tokens, tokenizer_dirs, built):
    """row_tokens None: one group per row (rows as long as the longest group); 256: all groups in one row."""
    model, tok, kind, groups = make(arch, tokenizer_dirs, built)
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=row_tokens)
    assert packed.num_tokens <= sum(len(s.input_ids) for s in flat)
    if row_tokens:
        assert packed.input_ids.shape[0] == 1  # several groups share one row (block-diagonal)
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_eager_attention_takes_an_additive_mask_with_the_same_result(arch, tokenizer_dirs, built):
    model, tok, kind, groups = make(arch, tokenizer_dirs, built)
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=256)
    with torch.no_grad():
        sdpa = packed_rewards(model, packed)
        model.transformer.set_attn_implementation("eager")
        try:
            eager = packed_rewards(model, packed)
        finally:
            model.transformer.set_attn_implementation("sdpa")
    torch.testing.assert_close(eager, sdpa, rtol=1e-4, atol=1e-5)


def test_the_prompt_is_computed_once_per_group(tokenizer_dirs, built):
    _, tok, kind, groups = make("llama", tokenizer_dirs, built)
    packed = pack_groups(groups, kind, tok.pad_token_id)
    padded_tokens = sum(len(s.input_ids) for g in groups for s in g)
    shared = sum((len(g) - 1) * shared_prefix_length(g) for g in groups)
    assert shared > 0
    assert packed.num_tokens == padded_tokens - shared


def test_shared_prefix_is_the_common_token_ids_capped_before_the_score_token():
    def enc(ids):
        return Encoded(ids, None, 2, len(ids) - 1, 2)

    # a BPE merge across the prompt/response boundary: token 2 differs although the prompt is 2 tokens
    assert shared_prefix_length([enc([1, 2, 3, 4, 9]), enc([1, 2, 5, 9])]) == 2
    assert shared_prefix_length([enc([1, 2, 3, 9]), enc([1, 2, 3, 9])]) == 3  # identical: branch = score token
    assert shared_prefix_length([enc([1, 2, 3, 9]), enc([1, 2, 3, 4, 9]), enc([1, 7, 9])]) == 1


def test_a_branch_sees_the_prompt_and_itself_never_a_sibling_or_another_group():
    # row: group 0 = prefix(2) + branch1(2) + branch2(1); group 1 = prefix(1) + branch1(1) + branch2(1); 1 pad
    grp = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, -1]])
    br = torch.tensor([[0, 0, 1, 1, 2, 0, 1, 2, 0]])
    m = attention_allowed(grp, br, causal=True)[0, 0]
    assert m[3].tolist() == [True, True, True, True, False, False, False, False, False]
    assert m[4].tolist() == [True, True, False, False, True, False, False, False, False]
    assert m[7].tolist() == [False] * 5 + [True, False, True, False]
    assert m[8].tolist() == [False] * 8 + [True]  # padding attends only to itself: no empty softmax row
    both = attention_allowed(grp, torch.zeros_like(br), causal=False)[0, 0]
    assert both[0].tolist() == [True] * 5 + [False] * 4  # encoders: the whole block, both ways


def test_pack_pairs_orders_rewards_chosen_then_rejected(tokenizer_dirs, built):
    model, tok, kind, groups = make("qwen2", tokenizer_dirs, built)
    pairs = [g[:2] for g in groups]
    chosen, rejected = [g[0] for g in pairs], [g[1] for g in pairs]
    with torch.no_grad():
        padded = model(pad_batch(chosen + rejected, tok.pad_token_id))
        packed = packed_rewards(model, pack_pairs(chosen, rejected, kind, tok.pad_token_id, row_tokens=200))
    torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-5)


def test_token_budget_batches_stay_within_the_budget():
    costs = [5, 3, 8, 2, 20, 1]
    batches = token_budget_batches(costs, 10, list(range(6)))
    assert batches == [[0, 1], [2, 3], [4], [5]]  # 20 > 10 gets a batch of its own
    assert sorted(i for b in batches for i in b) == list(range(6))
    # groups of several sequences: at most 4 sequences per batch as well (a group of 5 alone)
    grouped = token_budget_batches([1, 1, 1, 1], 100, [0, 1, 2, 3], members=[2, 2, 5, 1], max_members=4)
    assert grouped == [[0, 1], [2], [3]]
    padded = padded_budget_batches([4, 4, 6, 2], rows_per_example=2, max_tokens=24, order=[0, 1, 2, 3])
    assert padded == [[0, 1], [2, 3]]  # [0,1,2] would be 3 pairs x 2 rows x 6 = 36 > 24


def token_level_losses(model, tok, kind, groups, row_tokens=None, attention_cost=None):
    """(padded, packed): functions computing the token-level loss over every pair of each group, from padded
    rows and from packed rows (token values read back in the padded layout)."""
    pairs = [(g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))]
    chosen, rejected = [c for c, _ in pairs], [r for _, r in pairs]
    starts = torch.tensor([s.response_start for s in chosen]), torch.tensor([s.response_start for s in rejected])

    def padded():
        b = pad_batch(chosen + rejected, tok.pad_token_id)
        v, n = model.outputs(b).token_values, len(chosen)
        return token_level_pairwise(v[:n], v[n:], b.input_ids[:n], b.input_ids[n:], b.attention_mask[:n],
                                    b.attention_mask[n:], *starts)[None]

    def packed():
        pk = pack_pairs(chosen, rejected, kind, tok.pad_token_id, row_tokens, attention_cost)
        v, n = packed_outputs(model, pk).token_values, len(chosen)
        ids = pk.input_ids[pk.score_row[:, None], pk.token_col]
        return token_level_pairwise(v[:n], v[n:], ids[:n], ids[n:], pk.token_mask[:n], pk.token_mask[n:],
                                    *starts)[None]

    return padded, packed


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_token_level_loss_and_gradients_equal_padded(arch, tokenizer_dirs, built):
    """per_token head: each sequence's token values come back in the padded layout, so the token-level loss
    (and its gradients) is the padded one; groups of 3 use all three pairs (0, 1), (0, 2), (1, 2)."""
    model, tok, kind, groups = make(arch, tokenizer_dirs, built, spec=HeadSpec(head="per_token", pooling="last"))
    padded, packed = token_level_losses(model, tok, kind, groups, row_tokens=128)
    want_loss, want_g = rewards_and_grads(model, padded)
    got_loss, got_g = rewards_and_grads(model, packed)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-4, atol=1e-6)
    assert_grads_close(got_g, want_g)


@pytest.mark.parametrize(("arch", "spec"), [("gemma", HeadSpec(pooling="mean")),
                                            ("bert", HeadSpec(pooling="mean")),
                                            ("gpt2", HeadSpec(head="classifier", pooling="last"))])
def test_packed_rewards_and_gradients_equal_padded_for_other_read_outs(arch, spec, tokenizer_dirs, built):
    # gradients too: `train.packing: auto` packs these read-outs, so the packed backward must be the padded one
    model, tok, kind, groups = make(arch, tokenizer_dirs, built, spec=spec)
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=256)
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)


def _train(tmp_path, model_dir, data, **train):
    import json

    import rewardkit

    # fp32 and padded unless a test says otherwise: these tests compare runs at fp32 tolerances, and
    # `precision: auto` is bf16 on AMX / AVX512-BF16 CPUs and CUDA (bf16 versions: tests/unit/test_bf16.py)
    t = {"lr": 1e-3, "batch_size": 4, "max_steps": 4, "log_every": 1, "seed": 0, "tensorboard": False,
         "eval_zero_shot": False, "precision": "fp32", "packing": False, "max_tokens_per_forward": None, **train}
    cfg = {"model": {"name": str(model_dir)}, "data": {"train": str(data), "max_length": 64},
           "train": t, "output_dir": str(tmp_path)}
    result = rewardkit.train(cfg)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["split"] == "train"]
    return result, losses


def test_packed_encoder_mean_training_gives_the_padded_scores_up_to_one_offset(tiny_model_dir, hh_file, tmp_path):
    """`packing: auto` packs encoder mean pooling. The final scores of a packed and a padded run differ by one
    constant, the same for every response: the last LayerNorm's bias shifts all rewards alike, Bradley-Terry gives
    it an exactly-zero gradient, and Adam scales the two layouts' different rounding noise there to steps of lr.
    Every difference of scores (what the loss sees) agrees."""
    import json

    import rewardkit

    prompts = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:",
               "Q: name a colour", "\n\nHuman: Tell me a joke.\n\nAssistant:"]
    responses = [" Mix flour, water and yeast, then bake.", " 4.", " blue, or a long answer about red", " No."]
    runs = {}
    for packing in (False, True):
        cfg = {"model": {"name": str(tiny_model_dir("bert")), "dropout": False, "pooling": "mean"},
               "data": {"train": str(hh_file), "max_length": 64},
               "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 3, "seed": 0, "tensorboard": False,
                         "precision": "fp32", "eval_zero_shot": False, "packing": packing},
               "output_dir": str(tmp_path / str(packing))}
        result = rewardkit.train(cfg)
        summary = json.loads((result.output_dir / "summary.json").read_text())
        assert summary["resolved"]["packing"] is packing
        runs[packing] = torch.tensor(rewardkit.load_model(result.output_dir).score(prompts, responses),
                                     dtype=torch.float64)
    shift = runs[True] - runs[False]
    torch.testing.assert_close(shift, shift.mean().expand_as(shift), rtol=0, atol=1e-6)
    torch.testing.assert_close(runs[True] - runs[True][0], runs[False] - runs[False][0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("attention", ["auto", "sdpa"])
def test_training_with_packing_follows_the_padded_run(attention, tiny_model_dir, hh_file, tmp_path):
    """Same data order, same losses step by step, same final weights (fp32 summation order aside), with the
    default kernel on CPU (tree: the batch in one row) and with the dense mask (sdpa: short rows)."""
    from safetensors.torch import load_file

    padded, padded_losses = _train(tmp_path / "padded", tiny_model_dir("llama"), hh_file)
    packed, packed_losses = _train(tmp_path / "packed", tiny_model_dir("llama"), hh_file, packing=True,
                                   attention=attention)
    assert len(packed_losses) == len(padded_losses) == 4
    torch.testing.assert_close(torch.tensor(packed_losses), torch.tensor(padded_losses), rtol=1e-4, atol=1e-5)
    a = load_file(str(padded.output_dir / "model" / "model.safetensors"))
    b = load_file(str(packed.output_dir / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("packing", [True, False])
def test_forward_token_budget_gives_the_whole_micro_batch_update(packing, tiny_model_dir, hh_file, tmp_path,
                                                                 monkeypatch):
    """train.max_tokens_per_forward: each micro-batch runs as several forward/backward passes, weighted by their
    share of the pairs, so losses and final weights are the single-pass run's."""
    from safetensors.torch import load_file

    from rewardkit.models.reward_model import RewardModel

    whole, whole_losses = _train(tmp_path / "whole", tiny_model_dir("llama"), hh_file, packing=packing)
    passes = []
    forward = RewardModel.forward

    def counted(self, batch, full=False):
        sequences = batch.score_row.shape[0] if packing else batch.input_ids.shape[0]
        passes.append((batch.num_slots, sequences))  # computed tokens (padded: rows x width), sequences
        return forward(self, batch, full)

    monkeypatch.setattr(RewardModel, "forward", counted)
    budget = 120
    split, split_losses = _train(tmp_path / "split", tiny_model_dir("llama"), hh_file, packing=packing,
                                 max_tokens_per_forward=budget)
    assert len(passes) > 4  # 4 steps of 4 pairs ran as more passes than micro-batches
    assert all(tokens <= budget or sequences == 2 for tokens, sequences in passes)  # within budget, or one pair
    torch.testing.assert_close(torch.tensor(split_losses), torch.tensor(whole_losses), rtol=1e-4, atol=1e-5)
    a = load_file(str(whole.output_dir / "model" / "model.safetensors"))
    b = load_file(str(split.output_dir / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)


def test_token_budget_cuts_batches_by_tokens_not_pairs(tiny_model_dir, hh_file, tmp_path):
    from rewardkit.data.packing import budget_batches

    result, losses = _train(tmp_path, tiny_model_dir("llama"), hh_file, packing=True, max_tokens_per_batch=200,
                            max_steps=3)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # the batches the run drew from: within budget (or single over-long pairs), every pair exactly once
    from rewardkit.config import load_config
    from rewardkit.data.dataset import encode_pairs, load_pairs
    from rewardkit.data.render import Renderer
    from rewardkit.data.tokenize import SequenceEncoder

    cfg = load_config(tmp_path / "config.yaml")
    tok = result.scorer.tokenizer
    pairs = encode_pairs(load_pairs(cfg.data.train, cfg.data), Renderer(tok, "decoder"),
                         SequenceEncoder(tok, "decoder", 64))
    batches = budget_batches(pairs, 200, packed=True, kind="decoder")
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    assert len(batches) > 1 and max(len(b) for b in batches) > 4  # more pairs than batch_size where short
    packed = [pack_pairs([pairs[i].chosen for i in b], [pairs[i].rejected for i in b], "decoder", 0) for b in batches]
    assert all(p.num_tokens <= 200 or len(b) == 1 for p, b in zip(packed, batches, strict=True))


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_a_truncated_pair_shares_its_prompt_and_packs_like_padded(arch, tokenizer_dirs, built):
    """Group truncation cuts the same prompt tokens from chosen and rejected: the packed row shares the whole
    kept prompt, and rewards and gradients still equal the padded ones."""
    model, tok, kind, _ = make(arch, tokenizer_dirs, built)
    renderer = Renderer(tok, kind)
    prompt = "\n\nHuman: " + " ".join(f"topic{i}" for i in range(80)) + "\n\nAssistant:"
    pair = [" Sure, here is a long and careful answer to all of that, point by point.", " No."]
    encoder = SequenceEncoder(tok, kind, 48)
    chosen, rejected = encoder.encode_group([renderer.render(prompt, r) for r in pair])
    assert encoder.stats.counts["prompt_truncated"] == 2 and len(chosen.input_ids) == 48
    assert chosen.input_ids[:chosen.response_start] == rejected.input_ids[:rejected.response_start]
    if kind == "decoder":
        assert shared_prefix_length([chosen, rejected]) >= chosen.response_start
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch([chosen, rejected], tok.pad_token_id)))
    packed = pack_groups([[chosen, rejected]], kind, tok.pad_token_id)
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)


def test_packed_rows_under_gradient_checkpointing_give_the_padded_rewards_and_gradients(tokenizer_dirs, built):
    """model.gradient_checkpointing recomputes each layer in backward: the 4-D mask must reach the recompute."""
    model, tok, kind, groups = make("llama", tokenizer_dirs, built)
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=256)
    model.hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()  # checkpointing is active in training mode only (the tiny config has no dropout)
    try:
        assert model.transformer.base_model.gradient_checkpointing
        packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    finally:
        model.hf.gradient_checkpointing_disable()
        model.eval()
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)


def test_ranked_training_with_packing_follows_the_padded_run(tiny_model_dir, tmp_path):
    """Ranked lists packed as one group each (the prompt once, K branches): the same losses step by step."""
    import json

    import rewardkit
    from rewardkit.training.tasks import RankedTask

    data = REPO / "examples" / "data" / "ranked.jsonl"
    runs = {}
    for name, packing in (("padded", False), ("packed", True)):
        out = tmp_path / name
        rewardkit.train({"model": {"name": str(tiny_model_dir("llama"))}, "loss": {"name": "ranking"},
                         "data": {"train": str(data), "max_length": 48},
                         "train": {"lr": 1e-3, "batch_size": 2, "max_steps": 3, "log_every": 1, "seed": 0,
                                   "tensorboard": False, "eval_zero_shot": False, "packing": packing,
                                   "precision": "fp32"},  # fp32 tolerances below: pinned (auto is bf16 on AMX)
                         "output_dir": str(out)})
        runs[name] = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()
                      if json.loads(x)["split"] == "train"]
    assert RankedTask.packs and len(runs["packed"]) == len(runs["padded"]) == 3
    torch.testing.assert_close(torch.tensor(runs["packed"]), torch.tensor(runs["padded"]), rtol=1e-4, atol=1e-5)


def test_token_level_training_with_packing_follows_the_padded_run(tiny_model_dir, hh_file, tmp_path):
    """`packing: auto` packs the token-level pairwise loss (each branch's values read back through token_col):
    the same losses step by step and the same final weights as the padded run, in fp32."""
    import json

    from safetensors.torch import load_file

    import rewardkit

    runs, weights = {}, {}
    for name, packing in (("padded", False), ("packed", "auto")):
        out = tmp_path / name
        result = rewardkit.train({"model": {"name": str(tiny_model_dir("llama")), "head": "per_token",
                                            "dropout": False},
                                  "loss": {"name": "token_level_pairwise"},
                                  "data": {"train": str(hh_file), "max_length": 64},
                                  "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 3, "log_every": 1, "seed": 0,
                                            "tensorboard": False, "eval_zero_shot": False, "packing": packing,
                                            "precision": "fp32"},
                                  "output_dir": str(out)})
        summary = json.loads((result.output_dir / "summary.json").read_text())
        assert summary["resolved"]["packing"] is (packing == "auto")
        runs[name] = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()
                      if json.loads(x)["split"] == "train"]
        weights[name] = load_file(str(result.output_dir / "model" / "model.safetensors"))
    assert len(runs["packed"]) == len(runs["padded"]) == 3
    torch.testing.assert_close(torch.tensor(runs["packed"]), torch.tensor(runs["padded"]), rtol=1e-4, atol=1e-5)
    for k in weights["padded"]:
        torch.testing.assert_close(weights["packed"][k], weights["padded"][k], rtol=1e-3, atol=1e-4)


def test_packed_ranked_batch_reads_rewards_in_the_padded_order(tokenizer_dirs, built):
    """collate_packed gives the same rewards in the same flat order as collate, so one loss reads both."""
    from rewardkit.config import load_config
    from rewardkit.training.tasks import EncodedRanked, make_task

    model, tok, kind, groups = make("llama", tokenizer_dirs, built)
    task = make_task(load_config(None, None, base={"model": {"name": "x"}, "data": {}, "loss": {"name": "ranking"}}))
    items = [EncodedRanked(g, list(range(len(g))), f"a:{i}") for i, g in enumerate(groups)]
    padded, packed = task.collate(items, tok.pad_token_id, "right"), task.collate_packed(items, kind, tok.pad_token_id,
                                                                                         None)
    assert packed.tokens.num_tokens < padded.tokens.attention_mask.sum()  # prompts computed once
    with torch.no_grad():
        want, got = model(padded.tokens, full=True), model(packed.tokens, full=True)
    torch.testing.assert_close(got.rewards, want.rewards, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(task.loss(got, packed), task.loss(want, padded), rtol=1e-4, atol=1e-5)


def test_short_prompt_long_responses_are_packed_apart_when_attention_costs_more(tokenizer_dirs, built):
    """With a prompt of two tokens there is nothing to share, and a tree row would make every response attend
    densely across its sibling: with the attention cost given, the sequences go apart (plain causal segments),
    with the same rewards and gradients as padded; long prompts are still shared."""
    model, tok, kind, _ = make("llama", tokenizer_dirs, built)
    renderer, encoder = Renderer(tok, kind), SequenceEncoder(tok, kind, 256)
    long = [" " + " ".join(f"{w}{i} then" for i in range(n)) for w, n in (("alpha", 30), ("beta", 28))]
    apart = [encoder.encode(renderer.render("Q:", r)) for r in long]
    shared = [encoder.encode(renderer.render(GROUPS[0][0] * 4, r)) for r in (" Yes.", " No.")]
    cost = 1e-3
    assert not shares_prefix(apart, cost) and shares_prefix(apart, None) and shares_prefix(shared, cost)
    packed = pack_groups([apart], kind, tok.pad_token_id, attention_cost=cost)
    assert packed.num_tokens == sum(len(s.input_ids) for s in apart)  # nothing shared
    assert int(packed.branch_ids.max()) == 1 and packed.input_ids.shape[1] < sum(len(s.input_ids) for s in apart)
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(apart, tok.pad_token_id)))
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)
    tree = pack_groups([shared], kind, tok.pad_token_id, attention_cost=cost)
    assert tree.num_tokens < sum(len(s.input_ids) for s in shared)


def test_attention_cost_follows_the_flop_ratio(tokenizer_dirs, built):
    from rewardkit.models.packed import attention_cost

    model, *_ = make("llama", tokenizer_dirs, built)
    cfg = model.transformer.config  # tiny llama: hidden 32, 4 heads of 8, 2 kv heads, intermediate 64, 2 layers
    per_layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64 + 2 * 32
    head = sum(p.numel() for p in model.parameters()) - cfg.vocab_size * 32 - 2 * per_layer  # final norm + score
    assert attention_cost(model) == pytest.approx(4 * 32 / (2 * (per_layer + head / 2)))
    bert, *_ = make("bert", tokenizer_dirs, built)
    assert attention_cost(bert) is None


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("row_tokens", [None, 256])
def test_decoder_mean_pooling_over_the_response_packs_like_padded(arch, side, row_tokens, tokenizer_dirs, built):
    """Response-only mean pooling: packed rows (the prompt once, each response a branch; here also responses that
    start alike, so a branch's response begins on the shared prefix) give the padded rewards and gradients,
    whichever side the padded batch pads."""
    model, tok, kind, groups = make(arch, tokenizer_dirs, built, spec=HeadSpec(pooling="mean"))
    assert model.spec.mean_span == "response"
    renderer, encoder = Renderer(tok, kind), SequenceEncoder(tok, kind, 128)
    alike = [encoder.encode(renderer.render("\n\nHuman: Is it raining?\n\nAssistant:", r))
             for r in (" The answer is yes, it rains.", " The answer is no.")]
    assert shared_prefix_length(alike) > alike[0].response_start  # the shared prefix reaches into the responses
    groups = [*groups, alike]
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id, side)))
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=row_tokens)
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)
    pairs = pack_pairs([g[0] for g in groups], [g[1] for g in groups], kind, tok.pad_token_id, row_tokens=row_tokens)
    with torch.no_grad():
        want = model(pad_batch([g[0] for g in groups] + [g[1] for g in groups], tok.pad_token_id, side))
        torch.testing.assert_close(packed_rewards(model, pairs), want, rtol=1e-4, atol=1e-5)
