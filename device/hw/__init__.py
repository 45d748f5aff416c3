"""Hardware behind small interfaces: real backends (picamera2, PyAudio) and simulated ones.

Only :mod:`lerec.device.hw.picamera_camera` imports picamera2 and only
:mod:`lerec.device.hw.pyaudio_mic` imports PyAudio, both lazily. Backends are chosen in one
place, :mod:`lerec.device.hw.factory`, and passed in.
"""
