"""The recording pipeline: camera -> encoder -> outputs (pre-record ring, fMP4 segments)."""
