"""lerec recorder firmware (Raspberry Pi body-worn recorder, or simulated on any Linux PC)."""
