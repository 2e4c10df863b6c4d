"""Messages over a stream socket: an 8-byte length, then the bytes. Both ends use it.

Sockets rather than pipes because a socket pair exists on every platform, can be handed to a
child process on Windows too (``socket.share``), and works with ``selectors`` everywhere.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["receive", "send"]

_HEADER = struct.Struct("!Q")
_SMALL = 1 << 16


def send(sock: socket.socket, data: bytes) -> None:
    """Send one message; raises OSError when the other end is gone."""
    header = _HEADER.pack(len(data))
    if len(data) < _SMALL:
        sock.sendall(header + data)  # one system call for the common small message
    else:
        sock.sendall(header)
        sock.sendall(data)  # no copy of a large message


def receive(sock: socket.socket) -> bytearray:
    """Receive one whole message; raises EOFError when the other end closed its socket."""
    (size,) = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
    return _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise EOFError("the other end of the socket closed it")
        got += n
    return buffer
