"""Shared kernel of box and cloud: contracts, canonical ids, topic names and the MQTT link.

Imports no framework besides pydantic; the only third-party transport (paho-mqtt) is
confined to `sync.mqtt_link`.
"""
