"""s2s_core: a sans-IO client and server core for the Gradium S2S WebSocket API."""

__version__ = "0.1.0"
