"""The city without hardware: signals (pure), Modbus station servers built from the device profiles (TCP and
RTU), MQTT microsensor publishers, scenarios and faults. Imports only `sensors`.

Index: `simulators.signals` (CitySignals), `simulators.station` (StationServer), `simulators.rtu`
(RtuStationServer, PtyPair), `simulators.microsensor` (MicrosensorFleet), `simulators.payloads`,
`simulators.network_sim` (SimulatedNetwork), `simulators.scenario` (Scenario), `simulators.faults` (FaultPlan).
"""

from __future__ import annotations

from simulators.faults import FaultPlan, FaultSpec
from simulators.microsensor import MicrosensorFleet
from simulators.network_sim import SimulatedNetwork, synthetic_network
from simulators.rtu import PtyPair, RtuStationServer
from simulators.scenario import Scenario, ScenarioError, load_scenario
from simulators.signals import CitySignals
from simulators.station import StationServer

__all__ = ["CitySignals", "FaultPlan", "FaultSpec", "MicrosensorFleet", "PtyPair", "RtuStationServer", "Scenario",
           "ScenarioError", "SimulatedNetwork", "StationServer", "load_scenario", "synthetic_network"]
