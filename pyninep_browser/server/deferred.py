"""Deferred replies: requests answered later, and the rule that every request gets one reply.

A handler defers by calling :meth:`Deferrals.defer` and returning ``None``; whoever finishes the
work calls :meth:`Deferrals.complete`, which delivers the reply through ``on_reply``. Three kinds
of work defer:

- data the store has not loaded yet (:class:`~pyninep_browser.fs.ChunksNeeded`): the request's
  frame runs again once the chunks are in (nothing changed before it was raised);
- an fsync on an asynchronous store: answered when the durable commit lands;
- an async live function (its handle returned an awaitable).

Tflush (or a Tversion reset) answers a deferred request that has not completed with EINTR before
Rflush, and its late completion is dropped. A session restored from a state answers the requests
that were deferred when it was saved on :meth:`Deferrals.resume`: re-run from their frames when
they can be, else EINTR, so a restored guest never waits forever.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from .. import protocol as p
from ..fs import Filesystem, fail
from ..protocol import T

_TFSYNC = p.frame_struct(T.Tfsync)
_RFSYNC = p.frame_struct(T.Rfsync)


class Deferrals:
    """The deferred-reply half of the session."""

    fs: Filesystem
    on_reply: Callable[[bytes], None] | None
    pending: set[int]  # tags whose reply is deferred
    deferred_frames: dict[int, bytes]  # by tag: the frames a saved state re-runs (data, fsync)
    resume_frames: list[tuple[int, bytes | None]]  # from a restored state
    _reruns: dict[int, object]
    handle_buffer: Callable[[Any, int], bytes | None]

    def defer(self, tag: int) -> None:
        """Mark ``tag``'s reply as deferred: :meth:`complete` will deliver it."""
        self.pending.add(tag)

    def complete(self, tag: int, reply: bytes) -> None:
        """Deliver a deferred reply, unless the request was flushed meanwhile."""
        if tag in self.pending:
            self.pending.discard(tag)
            self.deferred_frames.pop(tag, None)
            self._reruns.pop(tag, None)
            if self.on_reply is not None:
                self.on_reply(reply)

    def _abandon(self, tag: int) -> None:
        """Answer a deferred request that will not complete (flushed, or the session reset) with
        EINTR now: a transport such as virtio holds a slot for every request until it is answered,
        and Linux ignores a reply to a request it flushed."""
        if tag in self.pending:
            self.complete(tag, p.lerror(tag, errno.EINTR))

    def _await_chunks(self, tag: int, frame: bytes, keys: list[str]) -> None:
        """Defer a request until the store has delivered ``keys``, then run its frame again."""
        token = object()
        self.defer(tag)
        self.deferred_frames[tag] = frame
        self._reruns[tag] = token

        def loaded(err: int) -> None:
            if self._reruns.get(tag) is not token or tag not in self.pending:
                return  # flushed (and maybe the tag reused) meanwhile
            del self._reruns[tag]
            if err:
                self.complete(tag, p.lerror(tag, err))
                return
            reply = self.handle_buffer(frame, len(frame))
            if reply is not None:
                self.complete(tag, reply)

        self.fs.load_chunks(keys, loaded)

    def _after(self, tag: int, pending: Any, make_reply: Callable[[], bytes]) -> bytes | None:
        """The reply to a live file's call: now, or, if it returned an awaitable (an async live
        function), deferred until that finishes."""
        if pending is None:
            return make_reply()
        self.defer(tag)

        def done(future: Any) -> None:
            try:
                future.result()
                reply = make_reply()
            except OSError as exc:
                reply = p.lerror(tag, exc.errno or errno.EIO)
            except BaseException:  # noqa: BLE001 - the live layer logged it; the guest gets EIO
                reply = p.lerror(tag, errno.EIO)
            self.complete(tag, reply)

        pending.add_done_callback(done)
        return None

    def _after_commit(self, tag: int, fid: int, datasync: int) -> bytes | None:
        """Rfsync once a durable commit holding everything up to now is in the store: inline
        for a synchronous store, else deferred until the store calls back."""
        inline: list[int] = []
        deferred = False

        def committed(err: int) -> None:
            if not deferred:
                inline.append(err)
            else:
                self.complete(tag, p.lerror(tag, err) if err else _RFSYNC.pack(7, T.Rfsync, tag))

        self.fs.persist(True, committed)
        if inline:
            if inline[0]:
                raise fail(inline[0], "committing to the store")
            return _RFSYNC.pack(7, T.Rfsync, tag)
        deferred = True
        self.defer(tag)
        self.deferred_frames[tag] = _TFSYNC.pack(_TFSYNC.size, T.Tfsync, tag, fid, datasync)
        return None

    def resume(self) -> None:
        """Answer the requests that were deferred when the restored state was saved: run their
        frames again (a read waiting for data, an fsync) or answer EINTR when there is nothing
        to re-run. Call once ``on_reply`` is set; :meth:`tick` calls it too."""
        frames, self.resume_frames = self.resume_frames, []
        for tag, frame in frames:
            if tag not in self.pending:
                continue
            reply = None
            if frame is not None:
                self.pending.discard(tag)
                reply = self.handle_buffer(frame, len(frame))
                if reply is None:
                    continue  # deferred again: answered when that completes
                self.pending.add(tag)
            self.complete(tag, reply if reply is not None else p.lerror(tag, errno.EINTR))

    def tick(self, now_ms: float) -> None:
        """Call often (every 100 ms or so) from the transport: write-behind for a stored
        filesystem, and answers for requests a restored state left open."""
        if self.resume_frames:
            self.resume()
        self.fs.tick(now_ms)

    def flush_store(self, done: Callable[[int], None]) -> None:
        """``done(0)`` once everything so far is durably committed (``done(errno)`` if not)."""
        self.fs.persist(True, done)
