"""sensors.mqtt.broker without a broker: ACL and password files, hashing by mosquitto_passwd, reload safety."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sensors.mqtt.broker.acl import (
    DAEMON_USER,
    SIMULATOR_USER,
    CredentialsError,
    allowed_topics,
    parse_sensor_formats,
    render_acl,
    render_sensor_formats,
)
from sensors.mqtt.broker.credentials import (
    BrokerFiles,
    broker_pid,
    issue_credentials,
    new_password,
    parse_password_file,
    reload_broker,
    remove_user,
    render_password_file,
    set_password,
)
from sensors.mqtt.directory import topic_matches
from sensors.mqtt.payloads import TOPICS


def _section(acl: str, user: str) -> list[str]:
    lines = acl.splitlines()
    start = lines.index(f"user {user}") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_each_sensor_may_publish_only_its_own_topic_of_its_own_format() -> None:
    acl = render_acl(["MS01", "MS02", "MS03"], formats={"MS01": ("airrohr",), "MS02": ("aqnet-json",)})
    assert _section(acl, "MS01") == ["topic write airrohr/MS01/data"]
    assert _section(acl, "MS02") == ["topic write aqnet/MS02/readings"]
    # credentials issued before formats were recorded: every format's topic, and the ACL says why
    assert _section(acl, "MS03") == ["topic write aqnet/MS03/readings", "topic write airrohr/MS03/data",
                                     "topic write purpleair/MS03/data"]
    assert "# sensor MS03: formats not recorded" in acl
    assert not any(line.startswith("pattern") for line in acl.splitlines())  # a pattern applies to every user
    assert {line.split()[1] for line in acl.splitlines() if line.startswith("topic")} == {"write"}
    assert allowed_topics("MS07") == ("aqnet/MS07/readings", "airrohr/MS07/data", "purpleair/MS07/data")
    assert allowed_topics("MS07", ["purpleair"]) == ("purpleair/MS07/data",)
    with pytest.raises(CredentialsError, match="payload format 'modbus'"):
        allowed_topics("MS07", ["modbus"])


def test_sensor_formats_file_round_trip_and_errors_name_the_line() -> None:
    formats = {"MS02": ("airrohr",), "MS01": ("aqnet-json", "purpleair")}
    assert parse_sensor_formats(render_sensor_formats(formats)) == formats
    with pytest.raises(CredentialsError, match="line 2: sensor MS01: payload format 'x'"):
        parse_sensor_formats("# c\nMS01 x\n")
    with pytest.raises(CredentialsError, match="line 1: expected"):
        parse_sensor_formats("MS01\n")


def test_allowed_topics_are_what_the_daemon_subscribes_to() -> None:
    # every topic a sensor may publish to is one the daemon's payload formats read
    for topic in allowed_topics("MS07"):
        assert any(topic_matches(t.replace("{sensor_id}", "+"), topic) for t in TOPICS.values()), topic


def test_service_users_get_their_sections_only_when_present() -> None:
    acl = render_acl([DAEMON_USER, SIMULATOR_USER, "MS01"])
    lines = acl.splitlines()
    daemon = lines.index(f"user {DAEMON_USER}")
    assert lines[daemon + 1] == "topic readwrite #"
    sim = lines.index(f"user {SIMULATOR_USER}")
    assert lines[sim + 1: sim + 4] == ["topic write aqnet/+/readings", "topic write airrohr/+/data",
                                       "topic write purpleair/+/data"]
    assert f"user {SIMULATOR_USER}" not in render_acl([DAEMON_USER])
    assert f"user {DAEMON_USER}" not in render_acl(["MS01"])


def test_password_file_round_trip() -> None:
    entries = {"MS02": "$7$101$b", "aqnet": "$7$101$a", "MS01": "$7$101$c"}
    text = render_password_file(entries)
    assert text.splitlines()[0].startswith("MS01:")
    assert parse_password_file(text) == entries
    assert parse_password_file("# comment\n\nMS01:$7$x\n") == {"MS01": "$7$x"}


def test_a_malformed_password_file_names_the_line() -> None:
    with pytest.raises(CredentialsError, match=r"passwd: line 2: expected username:hash"):
        parse_password_file("MS01:$7$x\nbroken\n", where="passwd")


def test_passwords_are_random_and_url_safe() -> None:
    a, b = new_password(), new_password()
    assert a != b and len(a) == 32
    assert all(c.isalnum() or c in "-_" for c in a)


def test_issue_keeps_only_the_hash_and_regenerates_the_acl(tmp_path: Path) -> None:
    files = BrokerFiles.in_dir(tmp_path)
    issued = issue_credentials(files, "MS01")
    text = files.password_file.read_text()
    assert issued.password not in text
    hashed = parse_password_file(text)["MS01"]
    assert hashed.startswith("$7$")  # mosquitto_passwd's PBKDF2-SHA512
    assert issued.password not in repr(issued)
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o600
    assert "topic write aqnet/MS01/readings" in files.acl_file.read_text()
    assert issued.topics == allowed_topics("MS01")
    # regenerating replaces the hash, keeps the other users; the formats given are recorded and narrow the ACL
    set_password(files, DAEMON_USER, "daemon-secret")
    again = issue_credentials(files, "MS01", formats=["airrohr"])
    assert again.topics == ("airrohr/MS01/data",)
    assert parse_sensor_formats(files.sensor_formats_file.read_text()) == {"MS01": ("airrohr",)}
    acl = files.acl_file.read_text()
    assert "topic write airrohr/MS01/data" in acl and "aqnet/MS01/readings" not in acl
    entries = parse_password_file(files.password_file.read_text())
    assert set(entries) == {"MS01", DAEMON_USER}
    assert entries["MS01"] != hashed and again.password != issued.password
    assert f"user {DAEMON_USER}" in files.acl_file.read_text()
    # the services' listener reads a password file of aqnet's own logins only: a sensor login is refused there
    assert set(parse_password_file(files.services_password_file.read_text())) == {DAEMON_USER}


def test_revoking_removes_the_user(tmp_path: Path) -> None:
    files = BrokerFiles.in_dir(tmp_path)
    issue_credentials(files, "MS01")
    issue_credentials(files, "MS02")
    assert remove_user(files, "MS01") is True
    assert set(parse_password_file(files.password_file.read_text())) == {"MS02"}
    assert remove_user(files, "MS01") is False


def test_reserved_and_malformed_usernames_are_refused(tmp_path: Path) -> None:
    files = BrokerFiles.in_dir(tmp_path)
    with pytest.raises(CredentialsError, match="reserved"):
        issue_credentials(files, DAEMON_USER)
    with pytest.raises(CredentialsError, match="MQTT username"):
        set_password(files, "MS01:evil", "x")
    assert not files.password_file.exists()


def test_a_missing_mosquitto_passwd_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="not found: install the mosquitto package"):
        issue_credentials(BrokerFiles.in_dir(tmp_path), "MS01", mosquitto_passwd=tmp_path / "nope")


def test_a_stale_pid_file_never_signals_another_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "mosquitto.pid"
    assert broker_pid(pid_file) is None
    # a process that is not mosquitto (SIGHUP would kill it): refused, and it keeps running
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file.write_text(f"{proc.pid}\n")
        assert broker_pid(pid_file) == proc.pid
        with pytest.raises(CredentialsError, match="not a running mosquitto"):
            reload_broker(proc.pid)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(CredentialsError, match="not a running mosquitto"):
        reload_broker(proc.pid)  # exited
    pid_file.write_text("garbage")
    with pytest.raises(CredentialsError, match="expected a process id"):
        broker_pid(pid_file)
    assert os.getpid()  # the test process itself was never signalled
