"""Stage 1 — what a sensor is and how to read it: the variable vocabulary, Sensor/Device records, device
profiles, the Modbus codec and driver, the MQTT client, subscriber and payload formats. Emits `RawReading`s.

Index: `sensors.reading` (RawReading, Gap), `sensors.variables`, `sensors.sensor`, `sensors.network`,
`sensors.modbus.profile`, `sensors.modbus.profile_check`, `sensors.modbus.{decode,plan,link,poller}`,
`sensors.mqtt.{client,subscriber,payloads}`,
`sensors.domain` (bundled domain data). Imports no other aqnet package.
"""
