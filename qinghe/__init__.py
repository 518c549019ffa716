"""Qinghe shared contracts: typed messages, topics, config loading, clock and the MQTT bus adapter."""

__version__ = "0.1.0"
