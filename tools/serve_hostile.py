#!/usr/bin/env python3
"""`ssd serve` under the load of honest and hostile clients, with the server's peak memory.

Starts `ssd serve` on a model (default flags unless given after `--`), then in turn:
  honest     64 clients x 8 requests of a 500x375 PNG (fills the batches and the queue; the
             requests per client are HONEST_REQUESTS's, default 8)
  bombs      16 clients at once, each a 238 KB PNG of 5600x5600 16-bit RGBA zeros (31 MP, under
             the 50 MP limit; ~360 MB to decode), sent whole before the answer is read
  both       the honest clients and the bombs at the same time
  slowloris  200 connections that send nothing, then an honest /health
  sigterm    a half-sent request held open, then SIGTERM: seconds to exit, and the exit code
and prints each phase's answers by status and the server's peak resident memory (VmHWM) after
it. Standard library only; Linux (/proc).

  python3 tools/serve_hostile.py SSD_BINARY MODEL [-- SERVE_FLAGS...]
"""

import collections
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib


def png(width, height, bit_depth, color_type, row):
    """A PNG whose every row (filter byte 0 included) is `row`."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(b"\0" + row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def honest_png():
    row = bytes((x * 7 + 13) % 251 for x in range(500 * 3))
    return png(500, 375, 8, 2, row)


def peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def post(port, body, timeout=120):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/v1/detect", body=body, headers={"Content-Type": "image/png"})
        status = c.getresponse().status
        c.close()
        return status
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__


def many(port, body, clients, each):
    counts = collections.Counter()
    lock = threading.Lock()

    def client():
        for _ in range(each):
            status = post(port, body)
            with lock:
                counts[status] += 1
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(counts)


def health(port, timeout):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/health")
        return c.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, model = sys.argv[1], sys.argv[2]
    extra = sys.argv[4:] if len(sys.argv) > 3 and sys.argv[3] == "--" else []
    server = subprocess.Popen([binary, "serve", "--trained-model", model, "--port", "0", *extra],
                              stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("the server did not start")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    pid = server.pid
    print(f"serving {model} ({' '.join(extra) or 'default flags'}), pid {pid}")
    print(f"idle: peak {peak_mib(pid):.0f} MiB")

    start = time.time()
    honest = honest_png()
    counts = many(port, honest, 64, int(os.environ.get("HONEST_REQUESTS", "8")))
    print(f"honest: {counts} in {time.time() - start:.1f} s; peak {peak_mib(pid):.0f} MiB")

    bomb = png(5600, 5600, 16, 6, bytes(5600 * 8))
    start = time.time()
    counts = many(port, bomb, 16, 1)
    print(f"bombs ({len(bomb) / 1e3:.0f} KB each): {counts} in {time.time() - start:.1f} s; "
          f"peak {peak_mib(pid):.0f} MiB; /health {health(port, 5)}")

    results = {}
    both = [threading.Thread(target=lambda: results.update(honest=many(port, honest, 64, 1))),
            threading.Thread(target=lambda: results.update(bombs=many(port, bomb, 16, 1)))]
    start = time.time()
    for t in both:
        t.start()
    for t in both:
        t.join()
    print(f"both: honest {results['honest']}, bombs {results['bombs']} in "
          f"{time.time() - start:.1f} s; peak {peak_mib(pid):.0f} MiB")

    sockets = []
    for _ in range(200):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    start = time.time()
    status = health(port, 60)
    print(f"slowloris ({len(sockets)} silent connections): /health {status} after "
          f"{time.time() - start:.1f} s")
    for s in sockets:
        s.close()

    held = socket.create_connection(("127.0.0.1", port))
    held.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 100000\r\n\r\n\x89PNG")
    time.sleep(0.2)
    start = time.time()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=120)
    print(f"sigterm with a half-sent request: exit {code} after {time.time() - start:.1f} s")
    held.close()


if __name__ == "__main__":
    main()
