"""s2s_anyio adapter."""
