"""A local HTTP server for the I/O benchmarks: answers every GET after 50 ms, on 127.0.0.1.

    python benchmarks/http_server.py PORT_FILE

Writes the port it listens on to PORT_FILE, then serves until it is terminated. asyncio, one
thread: thousands of connections at once cost it little, so the client is what is measured.
"""

from __future__ import annotations

import asyncio
import os
import sys

BODY = b"x" * 512
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # the request line and headers, up to the blank line
            line = await reader.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
        await asyncio.sleep(0.05)
        writer.write(RESPONSE)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port_file: str) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    temporary = port_file + ".tmp"
    with open(temporary, "w") as file:
        file.write(str(port))
    os.replace(temporary, port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
