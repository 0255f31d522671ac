"""The frozen-backbone probe of benchmarks/judge_data_efficiency.py: its shortcuts must not change what it measures."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from tests.conftest import REPO, tiny_config


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("judge_data_efficiency", REPO / "benchmarks" / "judge_data_efficiency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shared_prefix_hidden_states_equal_a_plain_forward_at_every_read_index(bench):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    hf = LlamaForCausalLM(tiny_config("llama", 300)).eval()
    prefix = torch.randint(1, 300, (24,)).tolist()
    a = prefix + torch.randint(1, 300, (9,)).tolist()
    b = prefix + torch.randint(1, 300, (5,)).tolist()
    reads_a, reads_b = [len(a) - 1, 26], [len(b) - 1, 24]  # the last token and one inside each continuation
    shared = bench.pair_hidden(hf, (a, reads_a), (b, reads_b))
    plain = bench.last_hidden(hf, [a, b], [reads_a, reads_b], 0)
    assert shared.shape == (2, 2, 32)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)


def test_paired_interval_of_a_read_out_against_itself_is_zero_and_its_own_interval_holds_the_mean(bench):
    rng = np.random.default_rng(0)
    correct = rng.random((5, 200)) < 0.6
    assert bench.two_stage_ci(correct, correct) == [0.0, 0.0]
    low, high = bench.two_stage_ci(correct)
    assert low < correct.mean() < high


def test_training_subsamples_are_distinct_pairs_the_same_for_every_read_out(bench):
    first = bench.subsample(1024, 64, 3, seed=0)
    assert len(set(first.tolist())) == 64 and first.max() < 1024
    assert (first == bench.subsample(1024, 64, 3, seed=0)).all()
    assert not (first == bench.subsample(1024, 64, 4, seed=0)).all()
    assert (bench.subsample(100, 256, 0, seed=0) == np.arange(100)).all()
