"""K LoRA adapters over one frozen backbone (models/ensemble_lora.py): each member is the backbone plus its own
adapter and head row, only its own loss reaches its weights, the backbone never moves, and the ensemble trains,
saves, loads, scores with its uncertainty and exports for peft consumers (the card's recipe, run as written)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import rewardkit
from rewardkit.config import LoraConfig, ModelConfig
from rewardkit.export import export_model
from rewardkit.export.exporter import ExportError
from rewardkit.models.ensemble_lora import CONSUMER_RECIPE, LoraEnsembleModel, MemberLoRALinear
from rewardkit.models.reward_model import RewardModel, build_model

from ..integration.export_helpers import TEXT_PROMPTS, TEXT_RESPONSES
from .test_ensemble import _config

K = 3
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def _build(model_dir, k=K, **lora):
    cfg = ModelConfig(name=str(model_dir), head="ensemble", ensemble_size=k, ensemble_members="lora",
                      lora=LoraConfig(**{**LORA, **lora}))
    return build_model(cfg, seed=0)


def _randomise_b(model: LoraEnsembleModel, seed=1) -> None:
    """B starts at 0 (every member = the base); give each member a different non-zero adapter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers.values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.5)


def _batch(tok, kind):
    from rewardkit.data.collate import pad_batch
    from rewardkit.data.render import Renderer
    from rewardkit.data.tokenize import SequenceEncoder

    renderer, enc = Renderer(tok, kind, "auto", "\n"), SequenceEncoder(tok, kind, 64, "truncate_prompt_left")
    seqs = [enc.encode(renderer.render(p, r)) for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    return pad_batch(seqs, tok.pad_token_id, "right")


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_each_member_is_the_backbone_plus_its_own_merged_adapter_and_its_head_row(arch, tiny_model_dir):
    model, tok, kind = _build(tiny_model_dir(arch))
    assert isinstance(model, LoraEnsembleModel) and model.layers
    _randomise_b(model)
    batch = _batch(tok, kind)
    with torch.no_grad():
        z = model.outputs(batch).logits
        assert z.shape == (len(TEXT_PROMPTS), K)
        for k in range(K):  # reference: adapter k folded into a copy of the plain weights, read at head row k
            hf = model.plain_hf()
            for name, layer in model.layers.items():
                hf.get_submodule(name).weight += layer.scaling * layer.lora_B[k] @ layer.lora_A[k]
            want = RewardModel(hf, kind, model.spec).outputs(batch).logits[:, k]
            assert torch.allclose(z[:, k], want, atol=1e-5)
    assert (z.std(1) > 1e-3).all()  # the members disagree


def test_one_members_loss_reaches_only_its_adapter_and_head_row_and_never_the_backbone(tiny_model_dir):
    model, tok, kind = _build(tiny_model_dir("llama"))
    _randomise_b(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable)  # backbone frozen
    model.outputs(_batch(tok, kind)).logits[:, 1].sum().backward()
    for layer in model.layers.values():
        for grad in (layer.lora_A.grad, layer.lora_B.grad):
            assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0
    head = model.transformer.score.weight.grad
    assert head[1].abs().sum() > 0 and head[0].abs().sum() == 0 and head[2].abs().sum() == 0


def test_a_layer_without_a_selected_member_refuses_to_run(tiny_model_dir):
    model, tok, kind = _build(tiny_model_dir("llama"))
    with pytest.raises(RuntimeError, match="without a member selected"):
        model.transformer(**{"input_ids": _batch(tok, kind).input_ids})


def test_members_start_from_their_own_seeded_adapters(tiny_model_dir):
    a, _, _ = _build(tiny_model_dir("llama"))
    b, _, _ = _build(tiny_model_dir("llama"))
    layer = next(iter(a.layers.values()))
    assert torch.equal(layer.lora_A, next(iter(b.layers.values())).lora_A)  # seeded: reproducible
    assert not torch.equal(layer.lora_A[0], layer.lora_A[1]) and layer.lora_B.abs().sum() == 0


def _train(tmp_path, model_dir, hh_file, arch_lora=None, **train):
    model = {"head": "ensemble", "ensemble_size": K, "ensemble_members": "lora", "ensemble_beta": 0.5,
             "lora": {**LORA, **(arch_lora or {})}}
    return rewardkit.train(_config(tmp_path, model_dir, hh_file, model, **{"max_steps": 4, "lr": 2e-2, **train}))


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_k_lora_ensemble_trains_saves_loads_scores_and_exports_for_peft(arch, tiny_model_dir, hh_file, tmp_path):
    from safetensors.torch import load_file

    result = _train(tmp_path, tiny_model_dir(arch), hh_file)
    saved = tmp_path / "run" / "model"
    meta = json.loads((saved / "rewardkit.json").read_text())
    assert (meta["ensemble_members"], meta["ensemble_size"]) == ("lora", K)
    before, after = load_file(str(tiny_model_dir(arch) / "model.safetensors")), load_file(
        str(saved / "model.safetensors"))
    shared = [n for n in after if n in before and before[n].shape == after[n].shape]
    assert shared and all(torch.equal(before[n], after[n]) for n in shared)  # the backbone did not move
    for k in range(K):
        adapter = load_file(str(saved / "adapters" / f"member_{k}" / "adapter_model.safetensors"))
        assert any(n.endswith("lora_B.weight") and t.abs().sum() > 0 for n, t in adapter.items())  # trained
    scorer = rewardkit.load_model(tmp_path / "run")
    rows = scorer.score_uncertainty(TEXT_PROMPTS, TEXT_RESPONSES)
    k_rewards = torch.tensor([r["rewards_k"] for r in rows])
    assert k_rewards.shape == (len(TEXT_PROMPTS), K) and (k_rewards.std(1) > 0).all()
    assert scorer.score(TEXT_PROMPTS, TEXT_RESPONSES) == pytest.approx(
        result.scorer.score(TEXT_PROMPTS, TEXT_RESPONSES), abs=1e-5)  # reloaded = in memory
    assert [r["reward"] for r in rows] == pytest.approx(
        (k_rewards.mean(1) - 0.5 * k_rewards.std(1, correction=0)).tolist(), abs=1e-5)

    out = tmp_path / "export"
    exported = export_model(tmp_path / "run", out)
    assert exported.checks["interop_max_abs_diff"] <= 1e-4  # PeftMembers: transformers + peft, per member
    info = json.loads((out / "rewardkit.json").read_text())["export"]
    assert info["ensemble"]["members"] == "lora" and len(info["ensemble"]["adapters"]) == K
    assert info["serving"]["engines"]["vllm"]["supported"] is False
    card = (out / "README.md").read_text()
    assert f"ensemble of {K} LoRA adapters" in card and CONSUMER_RECIPE in card
    from transformers import AutoTokenizer

    from rewardkit.export.exporter import consumer_inputs
    from rewardkit.models.reward_model import ModelMeta

    tok, exported_meta = AutoTokenizer.from_pretrained(out), ModelMeta.load(out)
    env = {"DIR": str(out), "K": K, "torch": torch}
    with torch.no_grad():
        got = []
        for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True):
            env["inputs"] = consumer_inputs(tok, exported_meta, p, r)
            exec(CONSUMER_RECIPE, env)  # the card's code, as a consumer would paste it
            got.append(env["logits"][0])
    assert torch.allclose(torch.stack(got), k_rewards, atol=1e-4)
    with pytest.raises(ExportError, match="LoRA adapters"):
        export_model(tmp_path / "run", tmp_path / "vllm", engines=("vllm",))


def test_lora_members_train_with_packed_rows_as_with_padded_ones(tiny_model_dir, hh_file, tmp_path):
    padded = _train(tmp_path / "a", tiny_model_dir("llama"), hh_file, max_steps=2)
    packed = _train(tmp_path / "b", tiny_model_dir("llama"), hh_file, max_steps=2, packing=True)
    assert packed.metrics["eval"]["loss"] == pytest.approx(padded.metrics["eval"]["loss"], abs=1e-4)


def test_config_errors_name_the_setting(tiny_model_dir):
    d = tiny_model_dir("llama")
    with pytest.raises(ValueError, match="model.ensemble_members lora needs model.lora"):
        build_model(ModelConfig(name=str(d), head="ensemble", ensemble_members="lora"))
    with pytest.raises(ValueError, match="model.ensemble_freeze_backbone: with ensemble_members lora"):
        build_model(ModelConfig(name=str(d), head="ensemble", ensemble_members="lora", ensemble_freeze_backbone=True,
                                lora=LoraConfig(**LORA)))
    with pytest.raises(ValueError, match=r"model.lora.target_modules \['nope'\] match no linear layer"):
        _build(d, target_modules=["nope"])
    with pytest.raises(ValueError, match="model.ensemble_members must be heads or lora"):
        build_model(ModelConfig(name=str(d), head="ensemble", ensemble_members="many"))


def test_member_layer_is_peft_lora_forward():
    base = torch.nn.Linear(6, 5)
    layer = MemberLoRALinear(copy.deepcopy(base), 2, 3, 6.0, 0.0)
    with torch.no_grad():
        layer.lora_A.normal_(), layer.lora_B.normal_()
    x = torch.randn(4, 6)
    layer.member = 1
    want = base(x) + 2.0 * (x @ layer.lora_A[1].T @ layer.lora_B[1].T)  # scaling alpha / r = 2
    assert torch.allclose(layer(x), want, atol=1e-5)


def test_the_memory_plan_counts_one_backbone_forward_per_member(tiny_model_dir):
    from rewardkit.training.resolve import activation_bytes_per_token, model_facts

    model, _, _ = _build(tiny_model_dir("llama"))
    plain, _, _ = build_model(ModelConfig(name=str(tiny_model_dir("llama")), head="ensemble", ensemble_size=K))
    facts, one = model_facts(model), model_facts(plain)
    assert facts.layers == K * one.layers
    assert activation_bytes_per_token(facts, False) == K * activation_bytes_per_token(one, False)


def test_packed_rows_pick_the_tree_kernel_for_lora_members_as_for_the_plain_model(tiny_model_dir):
    from rewardkit.models import tree_attention
    from rewardkit.models.packed import select_attention

    model, _, _ = _build(tiny_model_dir("llama"))
    plain, _, _ = build_model(ModelConfig(name=str(tiny_model_dir("llama")), head="ensemble", ensemble_size=K))
    cpu = torch.device("cpu")
    assert select_attention(plain, "auto", cpu) == select_attention(model, "auto", cpu) == tree_attention.NAME
