"""Length-prefixed pickles over pipes, with deadlines."""

import os
import pickle
import select
import struct
import time

__all__ = ["send", "recv"]


def send(stream, obj):
  """Writes obj to a binary stream (8-byte little-endian length, pickle)."""
  data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
  stream.write(struct.pack("<Q", len(data)))
  stream.write(data)
  stream.flush()


def _recv_exact(fd, n, deadline):
  chunks = []
  while n:
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
      raise TimeoutError
    chunk = os.read(fd, min(n, 1 << 20))
    if not chunk:
      raise EOFError
    chunks.append(chunk)
    n -= len(chunk)
  return b"".join(chunks)


def recv(fd, deadline=None):
  """Reads one object from file descriptor fd; TimeoutError past deadline
  (a time.time() value), EOFError if the writer closed or died."""
  (n,) = struct.unpack("<Q", _recv_exact(fd, 8, deadline))
  return pickle.loads(_recv_exact(fd, n, deadline))
