"""aqnet/localstack/: port book, reachable directories, and real TimescaleDB / Mosquitto children."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from aqnet.localstack import (
    LocalStackError,
    MosquittoBroker,
    PortBook,
    ServiceUser,
    TimescaleCluster,
    free_port,
    reachable,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="relocation only happens when running as root")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------------------------------ PortBook


def test_port_book_reuses_saved_port(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "var" / "ports.json")
    first = book.port("timescale")
    assert PortBook(tmp_path / "var" / "ports.json").port("timescale") == first
    assert json.loads((tmp_path / "var" / "ports.json").read_text()) == {"timescale": first}


def test_port_book_picks_new_port_when_saved_one_is_taken(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    saved = book.port("mosquitto")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", saved))
        squatter.listen()
        fresh = book.port("mosquitto")
    assert fresh != saved
    assert json.loads((tmp_path / "ports.json").read_text())["mosquitto"] == fresh


def test_port_book_gives_distinct_names_distinct_ports(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    ports = {book.port(n) for n in ("timescale", "mosquitto", "metrics", "api")}
    assert len(ports) == 4


def test_port_book_rejects_corrupt_file_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ports.json").write_text("[1, 2")
    with pytest.raises(LocalStackError, match=r"ports\.json"):
        PortBook(tmp_path / "ports.json").port("x")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_free_port_takes_the_ports_of_its_block_in_turn_and_skips_a_taken_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        monkeypatch.setenv("AQNET_PORT_RANGE", f"{taken - 1}-{taken + 1}")
        ports = [free_port() for _ in range(4)]
    assert taken not in ports and set(ports) <= {taken - 1, taken + 1}
    assert ports[2:] == ports[:2]  # in turn, wrapping round the block


# ------------------------------------------------------------------------------------------ reachable


def test_reachable_requires_every_ancestor_traversable(tmp_path: Path) -> None:
    assert not reachable(tmp_path, 54321, [54321]) or os.geteuid() != 0  # pytest's base dir is 0700
    base = Path(tempfile.mkdtemp(prefix="aqnet-test-"))  # /tmp is traversable by all
    base.chmod(0o755)
    outer = base / "outer"
    inner = outer / "inner" / "data"
    inner.mkdir(parents=True)
    outer.chmod(0o700)
    other_uid, other_gid = 54321, 54321
    assert not reachable(inner, other_uid, [other_gid])
    outer.chmod(0o711)
    assert reachable(inner, other_uid, [other_gid])
    outer.chmod(0o750)
    assert reachable(inner, other_uid, [os.stat(outer).st_gid])  # through the group bit
    assert not reachable(inner, other_uid, [other_gid])
    assert reachable(inner, 0, [])  # root reaches everything
    shutil.rmtree(base)


@pytest.mark.integration
@as_root
def test_cluster_data_dir_is_relocated_behind_a_symlink_when_unreachable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    pg = ServiceUser.lookup("postgres")
    assert not reachable(private / "pgdata", pg.uid, pg.groups)
    cluster = TimescaleCluster(private / "pgdata", free_port(), persistent=False)
    try:
        cluster.start()
        assert (private / "pgdata").is_symlink()
        real = Path(os.path.realpath(private / "pgdata"))
        assert real.parent.name.startswith("aqnet-") and str(real).startswith("/tmp/")
        assert stat.S_IMODE(real.parent.stat().st_mode) == 0o755
        assert real.stat().st_uid == pg.uid
        assert (private / "pgdata" / "PG_VERSION").exists()
    finally:
        cluster.discard()
    assert not (private / "pgdata").exists() and not real.exists()


# --------------------------------------------------------------------------------------- TimescaleDB


@pytest.mark.integration
def test_cluster_restart_keeps_data_and_updates_extension(tmp_path: Path) -> None:
    cluster = TimescaleCluster(tmp_path / "pgdata", free_port(), persistent=False)
    try:
        with cluster:
            first_pid = cluster.pid
            assert cluster.url == f"postgresql://aqnet@127.0.0.1:{cluster.port}/aqnet"
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (x int)")
                conn.execute("INSERT INTO kept VALUES (42)")
                version = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
                assert version is not None
        assert first_pid is not None and not _alive(first_pid)
        assert "ALTER EXTENSION timescaledb UPDATE" not in cluster.log_path.read_text()
        with cluster:
            assert cluster.pid != first_pid
            with psycopg.connect(cluster.url) as conn:
                assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
                assert conn.execute("SHOW timescaledb.telemetry_level").fetchone() == ("off",)
            second_pid = cluster.pid
        assert "ALTER EXTENSION timescaledb UPDATE" in cluster.log_path.read_text()
        assert second_pid is not None and not _alive(second_pid)
    finally:
        cluster.discard()


@pytest.mark.integration
def test_cluster_listens_on_loopback_tcp_only(timescale: TimescaleCluster) -> None:
    with psycopg.connect(timescale.url) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('listen_addresses', 'unix_socket_directories', 'fsync', 'shared_preload_libraries')"
        ).fetchall())
    assert settings == {"listen_addresses": "127.0.0.1", "unix_socket_directories": "", "fsync": "on",
                        "shared_preload_libraries": "timescaledb"}


@pytest.mark.integration
def test_cluster_start_failure_reports_the_log(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        cluster = TimescaleCluster(tmp_path / "pgdata", squatter.getsockname()[1], persistent=False,
                                   start_timeout_s=20)
        try:
            with pytest.raises(LocalStackError, match=r"(?s)postgres .*exited.*could not"):
                cluster.start()
            assert not cluster.running
        finally:
            cluster.discard()


# ------------------------------------------------------------------------------------------ Mosquitto

_CONNECT = bytes([0x10, 0x10, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x04]) + b"test"


def test_raw_connect_packet_is_well_formed() -> None:
    assert len(_CONNECT) == 2 + _CONNECT[1]


@pytest.mark.integration
def test_mosquitto_accepts_mqtt_connection(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with socket.create_connection(("127.0.0.1", mosquitto.port), timeout=5) as s:
        s.sendall(_CONNECT)
        assert s.recv(4) == bytes([0x20, 0x02, 0x00, 0x00])  # CONNACK, return code 0 (accepted)


@pytest.mark.integration
def test_mosquitto_config_limits(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.real_dir is not None
    conf = (mosquitto.real_dir / "mosquitto.conf").read_text()
    assert f"listener {mosquitto.port} 127.0.0.1\n" in conf
    assert "max_inflight_messages 1000\n" in conf and "max_queued_messages 200000\n" in conf


@pytest.mark.integration
def test_mosquitto_stop_and_kill_leave_no_process(mosquitto_factory) -> None:  # type: ignore[no-untyped-def]
    broker = mosquitto_factory()
    pid = broker.pid
    broker.stop()
    assert pid is not None and not _alive(pid) and not broker.running
    broker.start()
    pid = broker.pid
    broker.kill()
    assert pid is not None and not _alive(pid)


@pytest.mark.integration
def test_mosquitto_keeps_queued_qos1_messages_across_restart(mosquitto_factory) -> None:  # type: ignore[no-untyped-def]
    broker = mosquitto_factory()
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        arrived.set()

    def subscriber() -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="durable", clean_session=False)
        c.on_message = on_message
        c.connect("127.0.0.1", broker.port)
        c.subscribe("aqnet/+/readings", qos=1)
        c.loop_start()
        return c

    sub = subscriber()
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("aqnet/MS01/readings", b"kept", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    broker.stop()  # SIGTERM: the broker saves its queue to the persistence file
    broker.start()
    sub = subscriber()
    try:
        assert arrived.wait(10)
        assert got == [b"kept"]
    finally:
        sub.disconnect()
        sub.loop_stop()


# ------------------------------------------------------------------------------------ leak guard


def test_a_test_that_leaves_a_process_running_fails(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", str(root))
    pytester.makeconftest((root / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_leaky="""
        import subprocess

        def test_leaks():
            subprocess.Popen(["sleep", "60"])

        def test_cleans_up():
            p = subprocess.Popen(["sleep", "60"])
            p.kill()
            p.wait()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*processes left running by this test (killed now)*sleep*"])
