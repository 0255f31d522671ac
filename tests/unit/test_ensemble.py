"""Ensemble head (models/ensemble.py): aggregates, per-head bootstrap weights and loss, K = 1 is the plain head,
and an ensemble trains, saves, loads and scores with its uncertainty."""

from __future__ import annotations

import json
import math

import pytest
import torch

import rewardkit
from rewardkit.config import load_config
from rewardkit.losses import bradley_terry, ensemble_bradley_terry
from rewardkit.models.ensemble import (
    aggregate,
    bootstrap_weights,
    ensemble_std,
    init_heads,
    uncertainty_columns,
)
from rewardkit.models.heads import HeadSpec

from ..integration.test_train_cli import write_config

# --- aggregates -------------------------------------------------------------------------------------------------

def test_aggregates_are_the_mean_population_std_min_and_mean_minus_beta_std():
    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    assert torch.allclose(aggregate(z, "mean"), torch.tensor([2.0, 2.0]))
    assert torch.allclose(ensemble_std(z), torch.tensor([math.sqrt(2 / 3), math.sqrt(8.0)]))
    assert torch.equal(aggregate(z, "min"), torch.tensor([1.0, 0.0]))
    assert torch.allclose(aggregate(z, "mean_minus_std", beta=0.5),
                          torch.tensor([2.0 - 0.5 * math.sqrt(2 / 3), 2.0 - 0.5 * math.sqrt(8.0)]))
    rows = uncertainty_columns(z, "min", 1.0)
    assert rows[1] == {"reward": 0.0, "reward_mean": 2.0, "reward_std": pytest.approx(math.sqrt(8.0)),
                       "rewards_k": [0.0, 0.0, 6.0]}
    with pytest.raises(ValueError, match="aggregate must be one of"):
        aggregate(z, "median")


def test_a_single_head_has_zero_std_and_every_aggregate_is_its_reward():
    z = torch.tensor([[0.7], [-1.5]])
    for how in ("mean", "min", "mean_minus_std"):
        assert torch.equal(aggregate(z, how, beta=3.0), z[:, 0])


# --- the loss ---------------------------------------------------------------------------------------------------

def test_ensemble_bradley_terry_matches_the_hand_worked_value():
    # differences [[0, ln 3], [ln 3, 0]]: -logsigmoid(0) = ln 2, -logsigmoid(ln 3) = ln(4/3)
    r_c = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 1.0]])
    r_r = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    head0 = (2 * math.log(2) + 1 * math.log(4 / 3)) / 2
    head1 = (0 * math.log(4 / 3) + 1 * math.log(2)) / 2
    assert ensemble_bradley_terry(r_c, r_r, w).item() == pytest.approx((head0 + head1) / 2, rel=1e-6)
    # a margin is subtracted from every head's difference: margin ln 3 on pair 0 turns head 1's ln 3 into 0
    m = torch.tensor([math.log(3.0), 0.0])
    head0_m = (2 * math.log(1 + 3.0) + math.log(4 / 3)) / 2  # -logsigmoid(-ln 3) = ln 4
    head1_m = (0 + math.log(2)) / 2
    assert ensemble_bradley_terry(r_c, r_r, w, m).item() == pytest.approx((head0_m + head1_m) / 2, rel=1e-6)


def test_one_head_with_unit_weights_is_the_plain_bradley_terry_loss():
    g = torch.Generator().manual_seed(1)
    r_c, r_r, m = torch.randn(6, generator=g), torch.randn(6, generator=g), torch.rand(6, generator=g)
    assert torch.allclose(ensemble_bradley_terry(r_c[:, None], r_r[:, None], torch.ones(6, 1), m),
                          bradley_terry(r_c, r_r, m))


# --- bootstrap weights ------------------------------------------------------------------------------------------

KEYS = [f"train.jsonl:{i}" for i in range(1, 3001)]


def test_heads_see_different_poisson_resamples_with_mean_one():
    w = bootstrap_weights(KEYS, 5, seed=0, kind="poisson")
    assert w.shape == (3000, 5)
    assert abs(w.mean().item() - 1.0) < 0.05 and abs(w.var().item() - 1.0) < 0.1  # Poisson(1)
    assert abs((w == 0).float().mean().item() - math.exp(-1)) < 0.03  # ~37% of pairs left out of each resample
    for a in range(5):
        for b in range(a + 1, 5):
            assert not torch.equal(w[:, a], w[:, b])
            assert (w[:, a] != w[:, b]).float().mean() > 0.4  # not a shifted copy either


def test_bernoulli_weights_are_zero_or_two_and_none_is_all_ones():
    w = bootstrap_weights(KEYS, 3, seed=0, kind="bernoulli")
    assert set(w.unique().tolist()) == {0.0, 2.0} and abs(w.mean().item() - 1.0) < 0.05
    assert torch.equal(bootstrap_weights(KEYS[:4], 3, seed=0, kind="none"), torch.ones(4, 3))


def test_a_pairs_weights_depend_on_its_key_and_seed_not_on_its_batch():
    full = bootstrap_weights(KEYS[:50], 4, seed=7, kind="poisson")
    assert torch.equal(bootstrap_weights(KEYS[10:20], 4, seed=7, kind="poisson"), full[10:20])
    assert torch.equal(bootstrap_weights(list(reversed(KEYS[:50])), 4, seed=7, kind="poisson"), full.flip(0))
    assert not torch.equal(bootstrap_weights(KEYS[:50], 4, seed=8, kind="poisson"), full)


# --- initialisation ---------------------------------------------------------------------------------------------

def test_each_head_gets_its_own_seeded_init_independent_of_k_and_row_zero_is_untouched():
    def linear(k):
        torch.manual_seed(0)
        lin = torch.nn.Linear(16, k, bias=False)
        init_heads(lin, seed=3, std=0.02)
        return lin.weight.detach()

    w3, w5 = linear(3), linear(5)
    torch.manual_seed(0)
    assert torch.equal(w3[0], torch.nn.Linear(16, 3, bias=False).weight.detach()[0])
    assert torch.equal(w3[1:], w5[1:3])  # head k's init depends on (seed, k) only
    assert not torch.equal(w5[1], w5[2])
    assert abs(w5[1:].std().item() - 0.02) < 0.01


def test_validation_names_the_config_key():
    from rewardkit.models.head_kinds import head_kind

    kind = head_kind("ensemble")
    for spec, key in [(HeadSpec(head="ensemble", ensemble_size=0, ensemble_aggregate="mean", ensemble_beta=1.0),
                       "model.ensemble_size"),
                      (HeadSpec(head="ensemble", ensemble_size=3, ensemble_aggregate="max", ensemble_beta=1.0),
                       "model.ensemble_aggregate"),
                      (HeadSpec(head="ensemble", ensemble_size=3, ensemble_aggregate="mean", ensemble_beta=-1.0),
                       "model.ensemble_beta")]:
        with pytest.raises(ValueError, match=key):
            kind.validate(spec, "decoder")


# --- training, saving, scoring ----------------------------------------------------------------------------------

def _config(tmp_path, model_dir, data, model: dict, **train):
    import yaml

    path = write_config(tmp_path, model_dir, data, **train)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"].update(model)
    cfg["train"]["precision"] = "fp32"  # tolerances below are fp32 ones; auto is bf16 on AMX CPUs
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_k1_without_resampling_trains_exactly_as_the_plain_scalar_head(tiny_model_dir, hh_file, tmp_path):
    plain = rewardkit.train(_config(tmp_path / "a", tiny_model_dir("llama"), hh_file, {}, max_steps=4))
    one = rewardkit.train(_config(tmp_path / "b", tiny_model_dir("llama"), hh_file,
                                  {"head": "ensemble", "ensemble_size": 1, "ensemble_bootstrap": "none"},
                                  max_steps=4))
    assert one.metrics["eval"]["loss"] == pytest.approx(plain.metrics["eval"]["loss"], abs=1e-6)
    prompts, responses = ["\n\nHuman: hi\n\nAssistant:"] * 2, [" hello there", " no."]
    assert one.scorer.score(prompts, responses) == pytest.approx(plain.scorer.score(prompts, responses), abs=1e-6)


def test_an_ensemble_trains_saves_and_scores_with_its_uncertainty(tiny_model_dir, hh_file, tmp_path):
    cfg = _config(tmp_path, tiny_model_dir("llama"), hh_file,
                  {"head": "ensemble", "ensemble_size": 3, "ensemble_aggregate": "mean_minus_std",
                   "ensemble_beta": 0.5}, max_steps=6, lr=5e-3)
    result = rewardkit.train(cfg)
    meta = json.loads((tmp_path / "run" / "model" / "rewardkit.json").read_text())
    assert (meta["head"], meta["ensemble_size"], meta["ensemble_aggregate"], meta["ensemble_beta"]) == \
        ("ensemble", 3, "mean_minus_std", 0.5)
    scorer = rewardkit.load_model(tmp_path / "run")
    prompts = ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:"]
    responses = [" hello there", " 4."]
    rows = scorer.score_uncertainty(prompts, responses)
    for row in rows:
        k = torch.tensor(row["rewards_k"])
        assert len(row["rewards_k"]) == 3 and row["reward_std"] > 0  # the heads disagree after training
        assert row["reward_mean"] == pytest.approx(k.mean().item(), abs=1e-5)
        assert row["reward"] == pytest.approx(k.mean().item() - 0.5 * k.std(correction=0).item(), abs=1e-5)
    assert scorer.score(prompts, responses) == pytest.approx([r["reward"] for r in rows], abs=1e-5)
    assert result.scorer.score(prompts, responses) == pytest.approx([r["reward"] for r in rows], abs=1e-5)
    # the aggregate is overridable per call, per scorer, and in the TRL reward-function call
    mins = scorer.score_uncertainty(prompts, responses, aggregate="min")
    assert [r["reward"] for r in mins] == pytest.approx([min(r["rewards_k"]) for r in rows], abs=1e-6)
    scorer.aggregate = "mean"
    logged = {}
    got = scorer(prompts=prompts, completions=responses, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert got == pytest.approx([r["reward_mean"] for r in rows], abs=1e-6)
    assert logged["reward_std"] == pytest.approx(sum(r["reward_std"] for r in rows) / 2, abs=1e-6)


def test_frozen_backbone_variant_trains_only_the_heads(tiny_model_dir, hh_file, tmp_path):
    from safetensors.torch import load_file

    cfg = _config(tmp_path, tiny_model_dir("llama"), hh_file,
                  {"head": "ensemble", "ensemble_size": 3, "ensemble_freeze_backbone": True}, max_steps=3, lr=5e-3)
    rewardkit.train(cfg)
    before = load_file(str(tiny_model_dir("llama") / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    changed = {k for k in after if k in before and before[k].shape == after[k].shape
               and not torch.equal(before[k], after[k])}
    assert changed == set()  # the backbone (and every other shared weight) is as loaded
    assert after["score.weight"].shape[0] == 3


def test_an_ensemble_with_a_non_pairwise_loss_is_a_config_error(tiny_model_dir, hh_file, tmp_path):
    cfg = _config(tmp_path, tiny_model_dir("llama"), hh_file, {"head": "ensemble"}, max_steps=1)
    cfg.loss.name = "mse"
    with pytest.raises(ValueError, match="model.head ensemble trains on preference pairs"):
        rewardkit.train(cfg)


def test_an_ensemble_trains_with_packed_rows_as_with_padded_ones(tiny_model_dir, hh_file, tmp_path):
    model = {"head": "ensemble", "ensemble_size": 3}
    padded = rewardkit.train(_config(tmp_path / "a", tiny_model_dir("llama"), hh_file, model, max_steps=2))
    packed = rewardkit.train(_config(tmp_path / "b", tiny_model_dir("llama"), hh_file, model, max_steps=2,
                                     packing=True))
    assert packed.metrics["eval"]["loss"] == pytest.approx(padded.metrics["eval"]["loss"], abs=1e-4)
