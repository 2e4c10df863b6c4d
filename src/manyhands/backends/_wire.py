"""Messages over a stream socket: an 8-byte length, then the bytes. Both ends use it.

Sockets rather than pipes because a socket pair exists on every platform, can be handed to a
child process on Windows too (``socket.share``), and works with ``selectors`` everywhere.
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["receive", "send"]

_HEADER = struct.Struct("!Q")
_SMALL = 1 << 16
#: Descriptors a message may carry: a function's buffers, its ``shared()`` handles (at most
#: ``_shared.MAX_HANDLES``), a chunk's items. SCM_RIGHTS allows 253.
_MAX_FDS = 253


def send(sock: socket.socket, data: bytes, fds: tuple[int, ...] = ()) -> None:
    """Send one message; raises OSError when the other end is gone.

    ``fds``: file descriptors that travel with it (POSIX sockets only: ``SCM_RIGHTS``, which
    gives the other process descriptors of the same open files), attached to its header.
    """
    header = _HEADER.pack(len(data))
    if fds:
        sent = socket.send_fds(sock, [header], list(fds))
        if sent < len(header):
            sock.sendall(header[sent:])
        sock.sendall(data)
    elif len(data) < _SMALL:
        sock.sendall(header + data)  # one system call for the common small message
    else:
        sock.sendall(header)
        sock.sendall(data)  # no copy of a large message


def receive(sock: socket.socket, fds: list[int] | None = None) -> bytearray:
    """Receive one whole message; raises EOFError when the other end closed its socket.

    ``fds``: where descriptors that came with the message go (``send(fds=)``); without it,
    any that came are closed.
    """
    if fds is None:
        (size,) = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
    else:
        (size,) = _HEADER.unpack(_read_header(sock, fds))
    return _read_exactly(sock, size)


def _read_header(sock: socket.socket, fds: list[int]) -> bytes:
    header = b""
    while len(header) < _HEADER.size:
        data, more, _, _ = socket.recv_fds(sock, _HEADER.size - len(header), _MAX_FDS)
        if not data:
            for fd in more:
                os.close(fd)
            raise EOFError("the other end of the socket closed it")
        fds.extend(more)
        header += data
    return header


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
