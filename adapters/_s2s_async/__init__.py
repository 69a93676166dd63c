"""Async API shared by s2s_anyio and s2s_trio, written once against a small backend.

Private: import the public names from ``s2s_anyio`` or ``s2s_trio``. Nothing
here imports anyio or trio; each adapter passes its ``Backend``.
"""
