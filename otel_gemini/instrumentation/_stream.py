"""One stream wrapper for sync and async SDK streams.

The wrapped span's context is made current only around each read of the underlying
stream (where the SDK does its HTTP and, under AFC, runs tools), never in the caller's
loop body. The invocation ends when the stream is exhausted (completed), closed early or
garbage collected (not completed, not an error: breaking out of a loop is normal), or
raises (error).
"""

from __future__ import annotations

from typing import Any

from otel_gemini.instrumentation._invocation import Invocation


class InstrumentedStream:
    """Iterates (or async-iterates) the SDK's stream, reporting chunks to an invocation."""

    __slots__ = ("__weakref__", "_invocation", "_iterator", "_stream")

    def __init__(self, stream: Any, invocation: Invocation) -> None:
        self._stream = stream
        self._invocation = invocation
        self._iterator: Any = None

    # -- sync -------------------------------------------------------------------------------
    def __iter__(self) -> InstrumentedStream:
        return self

    def __next__(self) -> Any:
        invocation = self._invocation
        try:
            with invocation.activate():
                if self._iterator is None:
                    self._iterator = iter(self._stream)
                chunk = next(self._iterator)
        except StopIteration:
            invocation.finish(stream_completed=True)
            raise
        except BaseException as error:
            invocation.fail(error)
            raise
        invocation.observe(chunk)
        return chunk

    def close(self) -> None:
        """Close the underlying stream; the span ends as not completed."""
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                with self._invocation.activate():
                    close()
        finally:
            self._invocation.finish(stream_completed=False)

    def __enter__(self) -> InstrumentedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- async ------------------------------------------------------------------------------
    def __aiter__(self) -> InstrumentedStream:
        return self

    async def __anext__(self) -> Any:
        invocation = self._invocation
        try:
            with invocation.activate():
                if self._iterator is None:
                    self._iterator = self._stream.__aiter__()
                chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            invocation.finish(stream_completed=True)
            raise
        except BaseException as error:
            invocation.fail(error)
            raise
        invocation.observe(chunk)
        return chunk

    async def aclose(self) -> None:
        """Close the underlying async stream; the span ends as not completed."""
        try:
            target = self._iterator if self._iterator is not None else self._stream
            aclose = getattr(target, "aclose", None)
            if aclose is not None:
                with self._invocation.activate():
                    await aclose()
        finally:
            self._invocation.finish(stream_completed=False)

    async def __aenter__(self) -> InstrumentedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- abandoned --------------------------------------------------------------------------
    def __del__(self) -> None:
        # The caller broke out of the loop and dropped the stream: end the span, not an error.
        invocation = getattr(self, "_invocation", None)
        if invocation is not None:
            invocation.finish(stream_completed=False)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the wrapper lacks; private names would recurse while unset.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)
