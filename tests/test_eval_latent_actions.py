"""NMI, contingency tables, usage and the probe against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest
import torch

from worldmodels.eval import (
    action_usage,
    contingency_table,
    fit_majority_probe,
    latent_action_metrics,
    nmi_from_table,
    normalized_mutual_information,
    probe_accuracy,
)


def test_contingency_table_counts_pairs() -> None:
    latent = torch.tensor([[0, 1, 1], [2, 1, 0]])
    true = torch.tensor([[1, 0, 0], [1, 2, 1]])
    table = contingency_table(latent, true, num_latent=3, num_true=3)
    assert table.tolist() == [[0, 2, 0], [2, 0, 1], [0, 1, 0]]


def test_nmi_of_a_permutation_is_one() -> None:
    true = torch.arange(5).repeat(7)
    latent = torch.tensor([3, 0, 4, 1, 2])[true]  # a renaming of the true actions
    assert normalized_mutual_information(latent, true) == pytest.approx(1.0)
    assert nmi_from_table(torch.eye(4) * 3) == pytest.approx(1.0)


def test_nmi_of_independent_table_is_zero() -> None:
    assert nmi_from_table(torch.tensor([[2, 4], [1, 2]])) == pytest.approx(0.0, abs=1e-12)
    assert nmi_from_table(torch.ones(3, 5)) == pytest.approx(0.0, abs=1e-12)


def test_nmi_symmetric_2x2_hand_computed() -> None:
    # p = [[3, 1], [1, 3]] / 8, uniform marginals: I = 3/4 ln(3/2) + 1/4 ln(1/2), H = ln 2 each.
    mi = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert nmi_from_table(torch.tensor([[3, 1], [1, 3]])) == pytest.approx(mi / math.log(2), abs=1e-12)


def test_nmi_asymmetric_2x2_uses_arithmetic_mean() -> None:
    # latent [0, 0, 1, 1] vs true [0, 0, 0, 1]: p = [[.5, 0], [.25, .25]], p_L = (.5, .5), p_K = (.75, .25)
    latent, true = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 1])
    mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    h_latent = math.log(2)
    h_true = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    got = normalized_mutual_information(latent, true)
    assert got == pytest.approx(mi / ((h_latent + h_true) / 2), abs=1e-12)
    assert got == pytest.approx(0.3437, abs=1e-4)  # sklearn's normalized_mutual_info_score value
    assert got != pytest.approx(mi / math.sqrt(h_latent * h_true), abs=1e-3)  # not the geometric mean


def test_nmi_of_random_assignment_is_near_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    true = torch.randint(0, 5, (20_000,), generator=gen)
    latent = torch.randint(0, 8, (20_000,), generator=gen)
    assert normalized_mutual_information(latent, true, 8, 5) < 0.005
    # the same latents made informative about half the time score clearly higher
    informative = torch.where(torch.rand(20_000, generator=gen) < 0.5, true, latent)
    assert normalized_mutual_information(informative, true, 8, 5) > 0.1


def test_nmi_edge_cases_follow_sklearn() -> None:
    assert nmi_from_table(torch.tensor([[5]])) == 1.0  # both labelings constant
    assert nmi_from_table(torch.tensor([[2, 3]])) == 0.0  # one labeling constant
    with pytest.raises(ValueError, match="same shape"):
        normalized_mutual_information(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="declared"):
        contingency_table(torch.tensor([0, 3]), torch.tensor([0, 1]), num_latent=3, num_true=2)


def test_usage_histogram_and_entropy() -> None:
    latent = torch.tensor([[0, 0, 1, 3]])
    usage = action_usage(latent, num_latent=4)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert usage.counts.tolist() == [2, 1, 0, 1]
    assert usage.entropy_nats == pytest.approx(entropy)
    assert usage.normalized_entropy == pytest.approx(entropy / math.log(4))
    assert action_usage(torch.zeros(4, 7, dtype=torch.long), 8).normalized_entropy == 0.0  # collapse


def test_probe_on_a_perfect_many_to_one_mapping_is_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    latent_fit, latent_score = torch.randint(0, 8, (200,), generator=gen), torch.randint(0, 8, (100,), generator=gen)
    result = probe_accuracy(latent_fit, latent_fit // 2, latent_score, latent_score // 2, num_latent=8, num_true=4)
    assert result.accuracy == 1.0
    assert result.mapping.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert 0.1 < result.chance_accuracy < 0.45  # majority class of four near-uniform actions
    assert result.num_fit == 200 and result.num_scored == 100


def test_probe_on_independent_labels_is_near_chance() -> None:
    gen = torch.Generator().manual_seed(1)
    true = torch.randint(0, 4, (4000,), generator=gen)
    latent = torch.randint(0, 8, (4000,), generator=gen)
    result = probe_accuracy(latent[:2000], true[:2000], latent[2000:], true[2000:], 8, 4)
    assert abs(result.accuracy - 0.25) < 0.05
    assert abs(result.chance_accuracy - 0.25) < 0.05


def test_unseen_latent_maps_to_majority_true_action() -> None:
    mapping = fit_majority_probe(torch.tensor([0, 0, 1]), torch.tensor([2, 2, 1]), num_latent=3, num_true=3)
    assert mapping.tolist() == [2, 1, 2]


def test_latent_action_metrics_on_clips() -> None:
    gen = torch.Generator().manual_seed(2)
    true = torch.randint(0, 5, (10, 7), generator=gen)  # B T-1
    latent = torch.tensor([4, 2, 6, 0, 1])[true]  # a renaming into 8 latent actions (3 unused)
    metrics = latent_action_metrics(latent, true, num_latent=8, num_true=5)
    assert metrics.nmi == pytest.approx(1.0)
    assert metrics.probe.accuracy == 1.0
    assert metrics.probe.num_fit == 5 * 7 and metrics.probe.num_scored == 5 * 7
    assert metrics.usage.num_used == 5
    assert metrics.table.shape == (8, 5) and int(metrics.table.sum()) == 70
    json.dumps(metrics.to_dict())
    with pytest.raises(ValueError, match="at least 2 clips"):
        latent_action_metrics(latent[:1], true[:1], 8, 5)


# ---------------------------------------------------------------------------------------- few labels, linear probe
def test_collapse_actions_groups_raw_actions_and_keeps_unknown() -> None:
    from worldmodels.eval import collapse_actions

    true = torch.tensor([[0, 1, 2, -1], [3, 3, 0, 2]])
    out = collapse_actions(true, [[0, 1], [2], [3]])
    assert out.tolist() == [[0, 0, 1, -1], [2, 2, 0, 1]]
    with pytest.raises(ValueError, match="no action group"):
        collapse_actions(true, [[0, 1], [2]])
    with pytest.raises(ValueError, match="two action groups"):
        collapse_actions(true, [[0, 1], [1, 2], [3]])


def test_few_label_accuracy_rises_with_labels_and_is_perfect_for_a_renaming() -> None:
    from worldmodels.eval import few_label_accuracy

    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 4, (2000,), generator=g)
    latent = torch.tensor([2, 0, 3, 1])[true]  # a renaming: one label per latent action suffices
    noisy = torch.where(torch.rand(2000, generator=g) < 0.3, torch.randint(0, 4, (2000,), generator=g), latent)
    exact = few_label_accuracy(latent[:1000], true[:1000], latent[1000:], true[1000:], 4, 4, counts=(50, None))
    assert exact["accuracy"] == [1.0, 1.0] and exact["counts"] == [50, 1000]
    curve = few_label_accuracy(noisy[:1000], true[:1000], noisy[1000:], true[1000:], 4, 4, counts=(2, 10, 200))
    assert curve["accuracy"][0] < curve["accuracy"][1] <= curve["accuracy"][2] + 1e-9
    assert 0.7 < curve["accuracy"][2] < 0.85 and curve["chance_accuracy"] < 0.35


def test_linear_probe_reads_a_linearly_coded_action_and_not_noise() -> None:
    from worldmodels.eval import linear_probe

    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 3, (600,), generator=g)
    centres = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]])
    vectors = centres[true] + 0.3 * torch.randn(600, 2, generator=g)
    good = linear_probe(vectors[:300], true[:300], vectors[300:], true[300:], 3)
    assert good["accuracy"] > 0.97 and good["dim"] == 2
    noise = torch.randn(600, 2, generator=g)
    bad = linear_probe(noise[:300], true[:300], noise[300:], true[300:], 3)
    assert bad["accuracy"] < 0.5
