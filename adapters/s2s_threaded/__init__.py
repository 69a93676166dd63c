"""s2s_threaded adapter."""
