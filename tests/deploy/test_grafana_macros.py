"""The macro/variable expander checked against Grafana's own test cases, copied verbatim (inputs and expected
outputs), so it is not only checked against itself:
- grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros_test.go
  (commit 446b3e1f13300e6160905e8e1c7c39fcab9aa084), TestMacroEngine; the engine itself read from macros.go
  (commit 02ab314b81e2adc656bd7d08cc0533304a0037ff) and the global substitutions from
  sqleng/sql_engine.go `Interpolate` (commit 043dd88a47944c35205994c4da317e100dc9b12e);
- grafana/grafana packages/grafana-sql/src/datasource/variable-interpolation.test.ts
  (commit 2a14b0ed89dfeebe8adf2159e011fc724801cc0b): the SQL datasource's interpolateVariable;
- grafana/scenes packages/scenes/src/variables/interpolation/formatRegistry.test.ts
  (commit 9ce26ee8c3d066433e6043dc3d0eff28265af135): the csv and sqlstring formats.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.deploy.grafana_macros import Fill, MacroError, expand, expand_macros, expand_variables, rfc3339nano

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = FROM + timedelta(minutes=5)


def pg(sql: str, t_from: datetime = FROM, t_to: datetime = TO, *, timescaledb: bool = False) -> str:
    return expand_macros(sql, t_from, t_to, timescaledb=timescaledb)[0]


# macros_test.go, "Given a time range between 2018-04-12 00:00 and 2018-04-12 00:05" (engine: timescaledb false)
GRAFANA_CASES = [
    ("select $__time(time_column)", 'select time_column AS "time"'),
    ("select min($__time(time_column))", 'select min(time_column AS "time")'),
    ("WHERE $__timeFilter(time_column)",
     "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"),
    ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
    ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
    ("SELECT $__timeGroup(time_column,'5m'), value",
     'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value'),
    ("SELECT $__timeGroup(time_column,'5m') as time, value",
     "SELECT floor(extract(epoch from time_column)/300)*300 as time, value"),
    ("SELECT $__timeGroup(time_column,'5m')", "SELECT floor(extract(epoch from time_column)/300)*300"),
    ("SELECT $__timeGroupAlias(time_column,'5m')", 'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"'),
    ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
    ("$__timeGroupAlias(time_column , '5m')", 'floor(extract(epoch from time_column)/300)*300 AS "time"'),
    ("select $__unixEpochFilter(time)", f"select time >= {int(FROM.timestamp())} AND time <= {int(TO.timestamp())}"),
    ("select $__unixEpochNanoFilter(time)",
     f"select time >= {int(FROM.timestamp()) * 10**9} AND time <= {int(TO.timestamp()) * 10**9}"),
    ("select $__unixEpochNanoFrom()", f"select {int(FROM.timestamp()) * 10**9}"),
    ("select $__unixEpochNanoTo()", f"select {int(TO.timestamp()) * 10**9}"),
    ("SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
     "SELECT floor((time_column+time_adjustment)/300)*300"),
    ("SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
     'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"'),
]

# macros_test.go, the TimescaleDB-enabled engine
GRAFANA_TIMESCALE_CASES = [
    ("GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY time_bucket('300.000s',time_column)"),
    ("GROUP BY $__timeGroup(time_column , '5m')", "GROUP BY time_bucket('300.000s',time_column)"),
    ("GROUP BY $__timeGroup(time_column , '12d')", "GROUP BY time_bucket('1036800.000s',time_column)"),
    ("GROUP BY $__timeGroup(time_column , '20ms')", "GROUP BY time_bucket('0.020s',time_column)"),
]


@pytest.mark.parametrize(("sql", "expected"), GRAFANA_CASES)
def test_grafana_macro_cases(sql: str, expected: str) -> None:
    assert pg(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), GRAFANA_TIMESCALE_CASES)
def test_grafana_timescaledb_macro_cases(sql: str, expected: str) -> None:
    assert pg(sql, timescaledb=True) == expected


@pytest.mark.parametrize(("t_from", "t_to"), [
    (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1965, 2, 3, 8, tzinfo=UTC)),
    (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1980, 2, 3, 8, tzinfo=UTC)),
])
def test_grafana_pre_epoch_ranges(t_from: datetime, t_to: datetime) -> None:
    # macros_test.go: ranges before 1970 give negative epochs and RFC 3339 dates
    assert pg("WHERE $__timeFilter(time_column)", t_from, t_to) == (
        f"WHERE time_column BETWEEN '{t_from:%Y-%m-%dT%H:%M:%SZ}' AND '{t_to:%Y-%m-%dT%H:%M:%SZ}'")
    f, t = int(t_from.timestamp()), int(t_to.timestamp())
    assert f < 0
    assert pg("select $__unixEpochFilter(time)", t_from, t_to) == f"select time >= {f} AND time <= {t}"
    assert pg("select $__unixEpochNanoFilter(time)", t_from, t_to) == (
        f"select time >= {f * 10**9} AND time <= {t * 10**9}")


def test_grafana_fractional_seconds_in_rfc3339nano() -> None:
    # macros_test.go: "1960-02-01T07:00:00.5Z" / "1980-02-03T08:00:00.5Z"
    t_from = datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC)
    t_to = datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC)
    assert rfc3339nano(t_from) == "1960-02-01T07:00:00.5Z"
    assert rfc3339nano(t_to) == "1980-02-03T08:00:00.5Z"
    assert pg("WHERE $__timeFilter(time_column)", t_from, t_to) == (
        "WHERE time_column BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'")


def test_global_substitutions_come_first() -> None:
    # sqleng Interpolate: $__interval (gtime.FormatInterval), $__interval_ms, $__unixEpochFrom/To(), then the
    # engine, so `$__timeGroupAlias(t, $__interval)` is grouped by the panel's interval
    sql, fill = expand_macros("SELECT $__timeGroupAlias(t, $__interval), $__interval_ms, $__unixEpochFrom(), "
                              "$__unixEpochTo()", FROM, TO, interval=timedelta(minutes=10))
    assert sql == (f"SELECT time_bucket('600.000s',t) AS \"time\", 600000, {int(FROM.timestamp())}, "
                   f"{int(TO.timestamp())}")
    assert fill is None


@pytest.mark.parametrize(("arg", "expected"), [
    ("NULL", Fill("null", 3600.0)), ("previous", Fill("previous", 3600.0)), ("0", Fill("value", 3600.0, 0.0)),
    ("1.5", Fill("value", 3600.0, 1.5))])
def test_time_group_fill_modes(arg: str, expected: Fill) -> None:
    sql, fill = expand_macros(f"SELECT $__timeGroupAlias(t, '1h', {arg})", FROM, TO)
    assert sql == "SELECT time_bucket('3600.000s',t) AS \"time\""
    assert fill == expected


@pytest.mark.parametrize("sql", ["SELECT $__nope(x)", "SELECT $__timeGroup(t)", "SELECT $__timeGroup(t, 'x5')",
                                 "WHERE $__timeFilter()", "SELECT $__timeGroup(t, '1h', maybe)"])
def test_macros_grafana_refuses(sql: str) -> None:
    with pytest.raises(MacroError):
        expand_macros(sql, FROM, TO)


# variable-interpolation.test.ts (interpolateVariable, quoteLiteral = '…' with ' doubled)
@pytest.mark.parametrize(("value", "expected"), [
    ("value1", "value1"), ("O'Brien", "O''Brien"), ("", ""), (42, "42"),
    (["value1", "value2", "value3"], "'value1','value2','value3'"),
    (["O'Brien", "Smith", "D'Angelo"], "'O''Brien','Smith','D''Angelo'"),
    ([], ""), (["value1"], "'value1'"), (["a", "b'c", "d"], "'a','b''c','d'"),
    (["it's", "can't", "won't"], "'it''s','can''t','won''t'"),
])
def test_grafana_sql_interpolate_variable_cases(value: object, expected: str) -> None:
    assert expand_variables("$v", {"v": value}) == expected  # type: ignore[dict-item]


# formatRegistry.test.ts
@pytest.mark.parametrize(("fmt", "value", "expected"), [
    ("csv", "test", "test"), ("csv", ["test", "test2"], "test,test2"),
    ("sqlstring", "test'value", "'test''value'"), ("sqlstring", ["test", "test'value2"], "'test','test''value2'"),
    ("raw", ["12", "13"], "12,13"), ("pipe", ["test", "test2"], "test|test2"),
    ("singlequote", "test", "'test'"), ("singlequote", ["test", "test'2"], "'test','test\\'2'"),
    ("doublequote", ["test", 'test"2'], '"test","test\\"2"'),
])
def test_grafana_format_registry_cases(fmt: str, value: object, expected: str) -> None:
    assert expand_variables("${v:" + fmt + "}", {"v": value}) == expected  # type: ignore[dict-item]


def test_variable_syntaxes_and_builtins() -> None:
    sql = "WHERE s = '$sensor' AND v IN (${vars}) AND x = '[[sensor]]' AND y = '${sensor}' AND z = $unknown"
    assert expand_variables(sql, {"sensor": "KEN", "vars": ["pm25", "pm10"]}) == (
        "WHERE s = 'KEN' AND v IN ('pm25','pm10') AND x = 'KEN' AND y = 'KEN' AND z = $unknown")
    assert expand_variables("$__timeFilter(t) $__interval", {"__interval": "x"}) == "$__timeFilter(t) $__interval"


def test_expand_variables_then_macros() -> None:
    out = expand("SELECT $__timeGroupAlias(time, '1h'), avg(value) FROM t WHERE sensor_id = '$sensor' AND "
                 "$__timeFilter(time) GROUP BY 1", FROM, TO, {"sensor": "KEN"})
    assert out == ("SELECT time_bucket('3600.000s',time) AS \"time\", avg(value) FROM t WHERE sensor_id = 'KEN' AND "
                   "time BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z' GROUP BY 1")
