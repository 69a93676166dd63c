"""s2s_trio adapter."""
