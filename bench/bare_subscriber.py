"""The baseline's receiving end: a bare paho subscriber that only writes payloads to a file.

Runs as its own process (like the hub daemon it is compared with). Prints "ready" once
subscribed and "done <seconds>" when ``count`` messages have arrived (seconds from the first).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from lerec.deploy.pki import Pki  # noqa: E402
from support.rig import raw_client  # noqa: E402


def main() -> None:
    pki_dir, port, topic, count, out = sys.argv[1:6]
    total = int(count)
    received = 0
    first = 0.0
    done = threading.Event()
    f = open(out, "wb")

    def on_message(c, u, msg):  # noqa: ANN001
        nonlocal received, first
        if received == 0:
            first = time.perf_counter()
        f.write(msg.payload)
        received += 1
        if received == total:
            done.set()

    c = raw_client(Pki(Path(pki_dir)), "hub", int(port), client_id="bench-bare-sub")
    c.on_message = on_message
    c.on_subscribe = lambda *a: print("ready", flush=True)
    c.connect("127.0.0.1", int(port))
    c.subscribe(topic, qos=1)
    c.loop_start()
    done.wait()
    f.close()
    print(f"done {time.perf_counter() - first:.6f}", flush=True)
    c.disconnect()
    c.loop_stop()


if __name__ == "__main__":
    main()
