"""The benchmark report's paired ratios (``bench.report.paired_ratios``): a pure function of
the recorded rounds, checked on hand-made rounds."""

from __future__ import annotations

from bench.config import Config
from bench.report import paired_ratios


def rounds_of(pairs: list[tuple[float, float]]) -> list[dict]:
    """One round per (chorus-daphne, sio) connect-1,000 rate."""
    return [
        {"chorus-daphne": {"connect_n1": {"rate": ours}}, "sio": {"connect_n1": {"rate": peer}}}
        for ours, peer in pairs
    ]


def test_each_round_is_divided_by_the_same_rounds_peer():
    # The medians are equal (1,000 / 1,000 = 1.00x), but in three rounds of five Chorus had
    # 0.9x of the peer measured beside it: the paired median says so.
    rounds = rounds_of([(900, 1000), (1800, 2000), (2700, 3000), (1000, 500), (1000, 600)])
    text = paired_ratios(rounds, Config.make(quick=False))
    [row] = [line for line in text.splitlines() if "chorus-daphne" in line]
    assert "connect+auth 1000 (conn/s) ↑" in row
    assert "0.90x (0.90-1.67)" in row


def test_the_spread_is_the_interquartile_range_of_the_per_round_ratios():
    rounds = rounds_of([(800, 1000), (900, 1000), (1000, 1000), (1100, 1000), (1200, 1000)])
    text = paired_ratios(rounds, Config.make(quick=False))
    assert "1.00x (0.90-1.10)" in text


def test_fewer_than_three_rounds_report_nothing():
    assert paired_ratios(rounds_of([(900, 1000), (950, 1000)]), Config.make(quick=False)) == ""
