#!/usr/bin/python3
"""Prints a free loopback TCP port below the kernel's ephemeral range
(32768-60999): a port from bind(0) comes from that range, where any
outgoing connection on the machine may take it before our server binds it."""
import random
import socket

for _ in range(200):
    port = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        continue
    finally:
        s.close()
else:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()
