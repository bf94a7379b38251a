"""topology.yaml: the shipped file loads; bad files give one clear line naming field, value, allowed."""

import os
from pathlib import Path

import pytest

from actors.topology import TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_topology_lists_btc_and_eth_on_all_three_venues():
    topo, _ = load_topology(ROOT / "topology.yaml")
    assert [v.venue for v in topo.venues] == ["binance", "bybit", "hyperliquid"]
    for v in topo.venues:
        assert any(s.startswith("BTC/") for s in v.symbols) and any(s.startswith("ETH/") for s in v.symbols)
    assert Path(topo.catalog).is_absolute() and topo.endpoint("ingest") == f"ipc:///tmp/derivs-{os.getuid()}/derivs/ingest"


def test_catalog_override_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    topo, _ = load_topology(ROOT / "topology.yaml", catalog="mine")
    assert topo.catalog == str(tmp_path / "mine")


@pytest.mark.parametrize(
    "yaml, expected",
    [
        ("venues: [{venue: kraken, symbols: [BTC]}]", ["venues[0].venue", "'kraken'", "allowed: binance, bybit, hyperliquid"]),
        ("venues: [{venue: binance, symbols: [BTC], open_interest_interval_s: -5}]", ["venues[0].open_interest_interval_s", "> 0", "-5"]),
        ("venues: [{venue: binance, symbols: [BTC], open_interest_interval_s: often}]", ["open_interest_interval_s", "Expected `float`", "'often'"]),
        ("venues: [{venue: binance}]", ["venues[0]", "missing required field `symbols`"]),
        ("venues: [{venue: binance, symbols: [BTC], funding_intervl_s: 3}]", ["unknown field `funding_intervl_s`", "did you mean 'funding_interval_s'"]),
        ("mesh: derivs", ["missing required field `venues`"]),
        ("venues: [{venue: bybit, symbols: [A]}, {venue: bybit, symbols: [B]}]", ["bybit listed more than once"]),
        ("venues: [oops", ["not valid YAML"]),
    ],
)
def test_bad_topology_names_file_field_value_and_allowed(tmp_path, yaml, expected):
    path = tmp_path / "topology.yaml"
    path.write_text(yaml)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    message = str(err.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TopologyError, match="cannot read the topology file"):
        load_topology(tmp_path / "nope.yaml")


@pytest.mark.parametrize("yaml, seconds", [
    ("venues: [{venue: binance, symbols: [BTC]}]", 10.0),
    ("venues: [{venue: binance, symbols: [BTC]}, {venue: bybit, symbols: all}]", 30.0),  # the writer's last flush is large
    ("venues: [{venue: binance, symbols: all}]\nshutdown_timeout_s: 12", 12.0),  # what the user sets wins
])
def test_shutdown_timeout_defaults_to_the_collection_size(tmp_path, yaml, seconds):
    path = tmp_path / "topology.yaml"
    path.write_text(yaml)
    topo, _ = load_topology(path)
    assert topo.shutdown_timeout_s == seconds
