"""The SHA-256 of a file, computed from the bytes its reader takes, not by a second read.

A step that streams a 4D image reads every byte of its file once (the compressed bytes of a
``.nii.gz``). :func:`hash_reads` asks for the SHA-256 of a file while that happens: every
reader that :func:`open_binary` opens on the file during the ``with`` block feeds the
digest with the bytes it takes, in file order. The digest always equals
``hashlib.sha256(<the file's bytes>)``, whatever the reading pattern:

- bytes read again (a seek back, a second pass) are not hashed twice;
- bytes a reader skips (a seek forward over the header of a ``.nii``, or over unselected
  volumes) are read and hashed at the seek, since SHA-256 takes the bytes in order;
- bytes no reader took (the gzip trailer, volumes after the last selected one, or the whole
  file when nothing was streamed, e.g. an image held in memory) are read once by
  :meth:`StreamDigest.hexdigest`, from where the readers stopped.

Examples
--------
>>> import hashlib, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / 'data.bin'
>>> _ = path.write_bytes(bytes(range(256)) * 10)
>>> with hash_reads(path) as digest:
...     with open_binary(path) as stream:
...         _ = stream.seek(100)        # skipped bytes are hashed at the seek
...         _ = stream.read(50)
...         _ = stream.seek(0)          # read again: not hashed twice
...         _ = stream.read(10)
>>> digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()  # rest read once
True
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

__all__ = ["StreamDigest", "hash_reads", "open_binary", "watching"]

_CHUNK = 1 << 20

#: The digests asked for, by the real path of their file (several may watch one file).
_WATCHED: dict[str, list[StreamDigest]] = {}
_WATCHED_LOCK = threading.Lock()


class StreamDigest:
    """The SHA-256 of one file, fed by its readers with the bytes they take.

    It holds the hash of the file's first :attr:`hashed` bytes; a read that extends that
    prefix extends the hash, any other read is ignored. With ``background``, the hashing
    itself runs in a thread of its own, in order, on copies of the bytes: the reader (which
    decompresses, the slowest step of a pass) does not wait for it.
    """

    def __init__(self, path: str | os.PathLike, *, background: bool = False) -> None:
        self.path = os.fspath(path)
        self.hashed = 0
        self._sha = hashlib.sha256()
        self._lock = threading.Lock()
        self._hex: str | None = None
        self._pending: queue.SimpleQueue | None = None
        self._hasher: threading.Thread | None = None
        if background:
            self._pending = queue.SimpleQueue()
            self._hasher = threading.Thread(target=self._hash_pending, daemon=True,
                                            name="sha256")
            self._hasher.start()

    def _hash_pending(self) -> None:
        while (chunk := self._pending.get()) is not None:
            self._sha.update(chunk)  # hashlib releases the GIL for large buffers

    def feed(self, position: int, data: bytes | bytearray | memoryview) -> None:
        """Take the bytes a reader read at ``position`` (only the part past :attr:`hashed`)."""
        with self._lock:
            end = position + len(data)
            if self._hex is not None or not position <= self.hashed < end:
                return
            new = memoryview(data)[self.hashed - position:]
            if self._pending is not None:
                self._pending.put(bytes(new))  # the reader reuses its buffer
            else:
                self._sha.update(new)
            self.hashed = end

    def _drain(self) -> None:
        """Wait for the background hashing of what was fed (then hash in this thread)."""
        if self._hasher is not None:
            self._pending.put(None)
            self._hasher.join()
            self._pending = self._hasher = None

    def stop(self) -> None:
        """End the background hashing, if any (the digest can still be completed after)."""
        with self._lock:
            self._drain()

    def hexdigest(self) -> str:
        """The file's SHA-256 (hex), after hashing the bytes no reader took (read once).

        Call it when the readers are done: the digest is then final.
        """
        with self._lock:
            if self._hex is None:
                self._drain()
                with open(self.path, "rb") as stream:
                    stream.seek(self.hashed)
                    while chunk := stream.read(_CHUNK):
                        self._sha.update(chunk)
                        self.hashed += len(chunk)
                self._hex = self._sha.hexdigest()
            return self._hex


class _HashingReader(io.RawIOBase):
    """A raw binary file that feeds every byte it reads to the digests watching it."""

    def __init__(self, raw: io.FileIO, digests: list[StreamDigest]) -> None:
        super().__init__()
        self._raw, self._digests = raw, digests
        self._position = raw.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        got = self._raw.readinto(buffer)
        if got:
            data = memoryview(buffer).cast("B")[:got]
            for digest in self._digests:
                digest.feed(self._position, data)
            self._position += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._position + offset}.get(whence)
        if target is None:  # from the end: the size is needed first
            target = os.fstat(self._raw.fileno()).st_size + offset
        # SHA-256 takes the bytes in order: what a forward seek would skip is read now
        behind = min((d.hashed for d in self._digests), default=target)
        if behind < target:
            self._raw.seek(behind)
            self._position = behind
            chunk = bytearray(min(_CHUNK, target - behind))
            while self._position < target:
                view = memoryview(chunk)[: min(len(chunk), target - self._position)]
                if not self.readinto(view):
                    break  # past the end of the file: nothing more to hash
        self._position = self._raw.seek(target)
        return self._position

    def tell(self) -> int:
        return self._position

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


@contextmanager
def hash_reads(path: str | os.PathLike, *, background: bool = False,
               known: str | None = None) -> Iterator[StreamDigest]:
    """Hash ``path`` with the bytes its readers take inside the block.

    Yields a :class:`StreamDigest`; its :meth:`~StreamDigest.hexdigest` (called after the
    block, or at its end) is ``hashlib.sha256`` of the whole file. Only readers opened with
    :func:`open_binary` feed it (the streaming readers of :mod:`.volumes` do).
    ``background``: hash in a thread of its own (for a step that may use more than one CPU).
    ``known``: the digest is known already (from the read that made a matrix of the file):
    it is given back as it is, and nothing is hashed.
    """
    if known is not None:
        digest = StreamDigest(path)
        digest._hex = str(known)
        yield digest
        return
    digest = StreamDigest(path, background=background)
    key = os.path.realpath(path)
    with _WATCHED_LOCK:
        _WATCHED.setdefault(key, []).append(digest)
    try:
        yield digest
    finally:
        digest.stop()  # never leave a hashing thread behind
        with _WATCHED_LOCK:
            watchers = _WATCHED[key]
            watchers.remove(digest)
            if not watchers:
                del _WATCHED[key]


def watching(path: str | os.PathLike) -> list[StreamDigest]:
    """The digests :func:`hash_reads` opened on ``path``, for a reader that does not go
    through :func:`open_binary` (a memory map) and feeds them itself, in file order."""
    with _WATCHED_LOCK:
        return list(_WATCHED.get(os.path.realpath(path), ()))


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open a file for reading in binary: a plain file, or one that feeds the digests that
    :func:`hash_reads` opened on it (then unbuffered: the callers read large blocks)."""
    digests = watching(path)
    if not digests:
        return open(path, "rb")
    return _HashingReader(io.FileIO(path, "rb"), digests)
