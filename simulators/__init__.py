"""The city without hardware: signals (pure), Modbus station servers built from the device profiles, and MQTT
microsensor publishers. Imports only `sensors`.
"""
