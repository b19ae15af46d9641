"""The import contracts (.importlinter) name realtime's modules one by one: every module or
package of realtime must be in each list it belongs to, or a new one escapes the contracts
silently."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import realtime

CONTRACTS = Path(__file__).resolve().parents[2] / ".importlinter"


def listed(contract: str, key: str) -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    return set(parser[f"importlinter:contract:{contract}"][key].split())


def realtime_children() -> set[str]:
    return {f"realtime.{module.name}" for module in pkgutil.iter_modules(realtime.__path__)}


def test_every_realtime_module_is_in_the_contracts():
    children = realtime_children()
    assert children >= {"realtime.protocol", "realtime.transport", "realtime.push"}
    assert children - {"realtime.protocol"} <= listed("protocol-is-pure", "forbidden_modules")
    assert children - {"realtime.transport"} <= listed("transport-seam", "source_modules")
    # The apps may use push and the settings; AppConfig is Django's, not theirs to import.
    allowed = {"realtime.push", "realtime.conf", "realtime.apps"}
    assert children - allowed <= listed("apps-through-push", "forbidden_modules")
    # Anything may count with realtime.metrics: it may import nothing of realtime.
    assert children - {"realtime.metrics"} <= listed("metrics-is-a-leaf", "forbidden_modules")
