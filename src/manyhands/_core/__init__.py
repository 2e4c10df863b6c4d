"""The engine: scheduling that knows backends only through ``_protocol.Backend``."""
