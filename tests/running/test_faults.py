"""The fault layer: targeted rules, partitions, distributions, and seeded determinism."""

from __future__ import annotations

import random
import statistics

import pytest

from possim.protocol.faults import FaultDecider, FaultPlan, LinkFaults, Partition, Rule
from possim.protocol.latency import Latency


def test_rule_hits_exactly_the_nth_message_of_its_mti_and_direction() -> None:
    d = FaultDecider(FaultPlan(rules=(Rule("drop", "to_terminal", "0210", nth=2),)), random.Random(1))
    fates = [d.decide("to_terminal", "0210", 0.0).delays for _ in range(3)]
    assert [bool(f) for f in fates] == [True, False, True]
    assert d.decide("to_host", "0210", 0.0).delays  # other direction untouched


def test_delay_and_duplicate_rules() -> None:
    d = FaultDecider(FaultPlan(rules=(Rule("delay", "to_host", "0200", delay=40.0),
                                      Rule("duplicate", "to_host", "0400", delay=1.0))), random.Random(1))
    assert d.decide("to_host", "0200", 0.0).delays == (40.0,)
    assert d.decide("to_host", "0400", 0.0).delays == (0.0, 1.0)


def test_partition_blocks_only_inside_its_window_and_direction() -> None:
    d = FaultDecider(FaultPlan(partitions=(Partition(10.0, 20.0, "to_host"),)), random.Random(1))
    assert not d.decide("to_host", "0200", 15.0).delays
    assert d.decide("to_terminal", "0210", 15.0).delays
    assert d.decide("to_host", "0200", 20.0).delays


def test_same_seed_same_decisions_other_seed_other_decisions() -> None:
    plan = FaultPlan(to_host=LinkFaults(loss=0.3, latency=Latency("lognormal", value=0.3, sigma=0.8),
                                        duplicate=0.1, reorder=0.1))

    def fates(seed: int) -> list[tuple[float, ...]]:
        d = FaultDecider(plan, random.Random(seed))
        return [d.decide("to_host", "0200", float(i)).delays for i in range(200)]

    assert fates(7) == fates(7)
    assert fates(7) != fates(8)


def test_loss_rate_is_close_to_the_configured_probability() -> None:
    d = FaultDecider(FaultPlan(to_host=LinkFaults(loss=0.2)), random.Random(3))
    lost = sum(not d.decide("to_host", "0200", 0.0).delays for _ in range(5000))
    assert 0.17 < lost / 5000 < 0.23


@pytest.mark.parametrize("latency, mean", [
    (Latency("constant", value=0.5), 0.5),
    (Latency("uniform", low=1.0, high=3.0), 2.0),
    (Latency("normal", value=2.0, sigma=0.2), 2.0),
    (Latency("constant", value=1.0, jitter=0.5), 1.0),
])
def test_latency_distributions_have_their_mean_and_stay_non_negative(latency: Latency, mean: float) -> None:
    rng = random.Random(5)
    samples = [latency.sample(rng) for _ in range(4000)]
    assert min(samples) >= 0
    assert statistics.fmean(samples) == pytest.approx(mean, rel=0.05)


def test_lognormal_value_is_the_median() -> None:
    rng = random.Random(5)
    samples = [Latency("lognormal", value=0.4, sigma=0.9).sample(rng) for _ in range(4000)]
    assert statistics.median(samples) == pytest.approx(0.4, rel=0.08)
    assert max(samples) > 2.0  # the long tail is there
