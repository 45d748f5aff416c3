"""lerec wire protocol: pure message formats, canonical encoding, signatures and topics."""
