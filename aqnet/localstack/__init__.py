"""The local stack that `aqnet up` and the test fixtures run: TimescaleDB (`timescale`) and Mosquitto
(`mosquitto`) as child processes (`service`), on remembered or free ports (`ports`), and `aqnet up` itself
(`up`). Shell; I/O.
"""

from aqnet.localstack.mosquitto import MosquittoBroker, MosquittoTls
from aqnet.localstack.ports import PortBook, free_port
from aqnet.localstack.service import LocalStackError, ServiceUser, place_reachable, reachable
from aqnet.localstack.timescale import GRAFANA_LOGIN, PostgresTls, TimescaleCluster

__all__ = ["GRAFANA_LOGIN", "LocalStackError", "MosquittoBroker", "MosquittoTls", "PortBook", "PostgresTls",
           "ServiceUser", "TimescaleCluster", "free_port", "place_reachable", "reachable"]
