"""The local S2S service without I/O: what ``s2s_anyio.server`` runs on its sockets.

``ServerSession`` drives one ``ServerConnection`` like the service does
(authentication, one engine per request, output on the caller's clock, idle
timeout); ``LoopbackEngine`` stands in for the model (your audio back,
resampled and re-encoded, with a text per speech segment); ``FaultPlan``
injects faults for tests. Nothing here opens a socket or reads a clock.
"""

from __future__ import annotations

from ._engine import (
    VAD_HANGOVER_S,
    VAD_MIN_SEGMENT_S,
    VAD_THRESHOLD_DBFS,
    VAD_WINDOW_S,
    AudioOut,
    EngineError,
    LoopbackEngine,
    TextOut,
)
from ._faults import BENIGN_FAULTS, SETUP_REFUSALS, UPGRADE_REFUSALS, Fault, FaultPlan
from ._session import Engine, EngineFactory, ServerConfig, ServerSession, loopback_engine

__all__ = [
    "BENIGN_FAULTS",
    "SETUP_REFUSALS",
    "UPGRADE_REFUSALS",
    "VAD_HANGOVER_S",
    "VAD_MIN_SEGMENT_S",
    "VAD_THRESHOLD_DBFS",
    "VAD_WINDOW_S",
    "AudioOut",
    "Engine",
    "EngineError",
    "EngineFactory",
    "Fault",
    "FaultPlan",
    "LoopbackEngine",
    "ServerConfig",
    "ServerSession",
    "TextOut",
    "loopback_engine",
]
