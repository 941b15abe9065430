"""The one streaming path of the binding. Every generation -- Session.generate,
complete and chat, Chat.reply and say, a Batch member -- is a _Run: per-call
overrides and stop strings, the C stream callback, and the outcome. stream()
runs one on a worker thread behind a Generation iterator or on the calling
thread into a Completion; _Collector gathers a run's text (and calls the
user's callback) for Completion results and Batch members."""

import atexit
import collections
import ctypes
import queue
import threading
import weakref
from ctypes import byref, c_int64

from . import _lib
from . import grammar as _grammar
from ._errors import Cancelled
from ._util import (_Closing, Channel, _E_CANCELLED, _FINISH_NAMES, _L, _OK, _cstr, _raise, _Trap)
from .params import _LIVE_KEYS, _check_value, _stop_list

# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
class Piece(str):
    """A piece of generated text (a str) that also knows its channel."""

    def __new__(cls, text, channel=Channel.ANSWER):
        s = super().__new__(cls, text)
        s.channel = Channel(channel)
        return s


Completion = collections.namedtuple("Completion", "text reasoning n_tokens finish_reason")
Completion.__doc__ = """Result of Session.complete(): the answer text, the reasoning
text ("" unless reasoning=True), the number of generated tokens, and why it
ended: "eos", "length", "stop" (a stop string), "context" (a full context
under ctx_policy="stop") or "callback". BatchMember.result() adds
"cancelled", "closed" and "error"."""


class _StopMatcher:
    """Per-call stop strings, matched in the binding so that they apply to one
    call only (a session's own stop list can only grow). Text that may be the
    start of a stop string is held back until it is decided."""

    def __init__(self, stops):
        self.stops = stops
        self.held = ""
        self.ch = Channel.ANSWER
        self.matched = False

    def feed(self, ch, text):
        if not self.stops:
            return [(ch, text)]
        out = []
        if ch != self.ch and self.held:
            out.append((self.ch, self.held))
            self.held = ""
        self.ch = ch
        buf = self.held + text
        best = -1
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (best < 0 or i < best):
                best = i
        if best >= 0:
            self.matched = True
            self.held = ""
            if best:
                out.append((ch, buf[:best]))
            return out
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        if len(buf) > keep:
            out.append((ch, buf[:len(buf) - keep]))
        self.held = buf[len(buf) - keep:]
        return out

    def flush(self):
        held, self.held = self.held, ""
        return [(self.ch, held)] if held and not self.matched else []


class _Run:
    """One streaming call (ds8b_generate or ds8b_chat_reply): per-call
    overrides, stop strings, the stream trampoline, and the outcome. Used on
    the caller's thread (complete) or on a worker thread (Generation).

    invoke(cb, n_generated_ref) makes the C call; errmsg() reads the
    handle's message after a failure; done() runs after the call."""

    def __init__(self, session, invoke, errmsg, emit, max_tokens, stop, overrides,
                 done=None, grammar=None):
        self.session = session
        self.grammar = grammar            # a per-call Grammar (None: the session's own)
        self.h = session._handle()
        self.invoke, self.errmsg, self.done = invoke, errmsg, done
        self.emit = emit                  # emit(channel, text) -> truthy to stop
        self.stops = _StopMatcher(_stop_list(stop))
        if max_tokens is not None:
            overrides["max_tokens"] = max_tokens
        self.overrides = {k: _check_value(k, v) for k, v in overrides.items() if v is not None}
        self.trap = _Trap()
        self.stop_requested = None        # None, "callback", "closed" or "cancel"
        self.finished = threading.Event()
        self.rc = None
        self.message = ""
        self.n_tokens = 0
        self.finish_reason = None
        self.lib_finish = None            # ds8b_session_finish_reason() after the call
        self.cb = _lib.STREAM_FN(self._on_piece)

    def _on_piece(self, user, ptr, n, channel):
        if self.stop_requested or self.trap.exc is not None:
            return 1
        try:
            text = ctypes.string_at(ptr, n).decode("utf-8", "replace") if n else ""
            ch = Channel(channel) if channel in (0, 1, 2) else channel
            for c, t in self.stops.feed(ch, text):
                if self.emit(c, t):
                    self.stop_requested = self.stop_requested or "callback"
                    return 1
                if self.stop_requested:
                    return 1
            return 1 if (self.stops.matched or self.stop_requested) else 0
        except BaseException as e:  # noqa: B036 -- KeyboardInterrupt included
            self.trap.catch(e)
            return 1

    def stop(self, reason):
        """Asks the call to stop (any thread): the next piece returns nonzero,
        and ds8b_session_cancel() covers prompt evaluation."""
        if not self.stop_requested:
            self.stop_requested = reason
        if not self.finished.is_set():
            try:
                _L().ds8b_session_cancel(self.h)
            except Exception:
                pass

    def _apply(self, values):
        lib = _L()
        for name, (key, is_float, v) in values.items():
            if name not in _LIVE_KEYS:
                raise TypeError("%s cannot be changed per call; give it to model.session()"
                                % name)
            rc = (lib.ds8b_session_set_float if is_float else lib.ds8b_session_set_int)(
                self.h, key, v)
            if rc != _OK:
                _raise(rc, _cstr(lib.ds8b_session_errmsg(self.h)))

    def run(self):
        """Runs the call; returns normally or raises (restoring overrides)."""
        try:
            try:
                self._apply(self.overrides)
                if self.grammar is not None:
                    _grammar._attach(self.h, self.grammar)
                ng = c_int64()
                rc = self.invoke(self.cb, byref(ng))
                self.rc = rc
                self.n_tokens = ng.value
                if rc != _OK:
                    self.message = self.errmsg()
                if rc == _OK:
                    self.lib_finish = self.finish_of_library()
                    for c, t in self.stops.flush():
                        if self.emit(c, t):
                            self.stop_requested = self.stop_requested or "callback"
                            break
            finally:
                try:
                    self.restore()
                finally:
                    try:
                        if self.done is not None:
                            self.done(self.rc)
                    finally:
                        self.finished.set()
        except BaseException as e:  # noqa: B036 -- re-raised below
            self.trap.catch(e)
        self.trap.raise_()
        rc = self.rc
        if rc == _E_CANCELLED and self.stop_requested == "cancel":
            raise Cancelled(-8, "generation was cancelled (Session.cancel()) after %d tokens"
                            % self.n_tokens)
        if rc == _E_CANCELLED and self.stops.matched:
            self.finish_reason = "stop"
        elif rc == _E_CANCELLED and self.stop_requested in ("callback", "closed"):
            self.finish_reason = self.stop_requested
        elif rc != _OK:
            _raise(rc, self.message)
        elif self.lib_finish in ("eos", "length", "stop", "context", "grammar"):
            self.finish_reason = self.lib_finish
        else:  # a library without ds8b_session_finish_reason
            mt = self.overrides.get("max_tokens", (0, 0, self.session._base["max_tokens"]))[2]
            self.finish_reason = "length" if mt and self.n_tokens >= mt else "eos"

    def finish_of_library(self):
        """The session's ds8b_session_finish_reason() as a string (None if
        the library lacks it). Called while the session is known to be open."""
        lib = _L()
        if not lib.has("ds8b_session_finish_reason"):
            return None
        v = lib.ds8b_session_finish_reason(self.h)
        return _FINISH_NAMES.get(v)

    def restore(self):
        """Puts the session's own values back for the parameters this call
        overrode (seed excepted: a per-call seed reseeds on purpose)."""
        try:
            self._apply({k: v for k, v in self.session._base_checked().items()
                         if k in self.overrides and k != "seed"})
        finally:
            if self.grammar is not None:
                _grammar._attach(self.h, getattr(self.session, "_grammar", None))


_END = object()
_live_runs = weakref.WeakSet()


class Generation(_Closing):
    """Iterator over the pieces of one generation, produced by
    Session.generate() or Session.chat(). ds8b_generate runs on a worker
    thread that feeds a queue; close() (or break + garbage collection, or
    leaving a ``with`` block) cancels it. After the end, n_tokens and
    finish_reason tell how it went."""

    def __init__(self, run, pairs):
        self._run = run
        self._pairs = pairs
        self._q = q = queue.SimpleQueue()
        self._done = False
        run.emit = lambda ch, text: q.put((ch, text))
        self._thread = threading.Thread(target=self._work, args=(run, q), daemon=True,
                                        name="ds8b-generate")
        _live_runs.add(run)
        self._thread.start()

    @staticmethod
    def _work(run, q):
        # Holds the run (and through it the session), never the Generation,
        # so that dropping the iterator lets __del__ cancel the work.
        try:
            run.run()
            q.put((_END, None))
        except BaseException as e:  # noqa: B036
            q.put((_END, e))

    @property
    def n_tokens(self):
        return self._run.n_tokens

    @property
    def finish_reason(self):
        return self._run.finish_reason

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        try:
            while True:
                ch, item = self._q.get()
                if ch is _END:
                    self._finish()
                    if item is not None:
                        raise item
                    raise StopIteration
                if item:
                    return (ch, item) if self._pairs else Piece(item, ch)
        except StopIteration:
            raise
        except BaseException:
            # KeyboardInterrupt while waiting, or an error: stop the worker.
            self.close()
            raise

    def _finish(self):
        self._done = True
        self._thread.join()
        sess = self._run.session
        if sess._active is self._run:
            sess._active = None

    def cancel(self):
        """Stops the generation from any thread; the iterator then raises
        Cancelled (as after Session.cancel())."""
        self._run.stop("cancel")

    def close(self):
        """Stops the generation if it is still running and waits for it;
        the iterator then simply ends."""
        if self._done:
            return
        self._run.stop("closed")
        while True:
            ch, _ = self._q.get()
            if ch is _END:
                break
        self._finish()

    def text(self):
        """Consumes the rest of the generation and returns it as one string."""
        return "".join(t if not self._pairs else t[1] for t in self)


@atexit.register
def _stop_all():
    """Stops worker threads still generating when the interpreter exits."""
    for run in list(_live_runs):
        try:
            run.stop("closed")
            run.finished.wait(5)
        except Exception:
            pass


def _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed):
    """The per-call sampling overrides of generate, complete, chat, reply and
    Batch.add (None: the session's own value)."""
    return dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                repeat_penalty=repeat_penalty, seed=seed)


class _Collector:
    """A run's text by channel for its Completion, passed on to the user's
    callback(text, channel) (a true return ends the run)."""

    def __init__(self, callback=None):
        self.callback = callback
        self.answer, self.thinking, self.tool = [], [], []

    def emit(self, ch, text):
        # tool-call text is kept apart: the chat parses it (Chat.tool_calls)
        (self.thinking if ch == Channel.REASONING else
         self.tool if ch == Channel.TOOL_CALL else self.answer).append(text)
        return self.callback(text, ch) if self.callback is not None else None

    @property
    def text(self):
        return "".join(self.answer)

    @property
    def reasoning(self):
        return "".join(self.thinking)

    def completion(self, n_tokens, finish_reason):
        return Completion(self.text, self.reasoning, n_tokens, finish_reason)


def stream(session, invoke, errmsg, max_tokens, stop, overrides, *, pairs=False,
           collector=None, done=None, grammar=None):
    """Starts one generation on session: invoke(cb, n_generated_ref) makes
    the C call, errmsg() reads its handle's message after a failure.

    Without a collector, returns a Generation that runs it on a worker
    thread (of Piece objects, or of (Channel, text) pairs with pairs=True);
    with one, runs it on the calling thread and returns its Completion.
    done(rc) runs after the C call either way."""
    run = _Run(session, invoke, errmsg, collector.emit if collector is not None else None,
               max_tokens, stop, overrides, done=done, grammar=grammar)
    session._active = run
    if collector is None:
        return Generation(run, pairs=pairs)
    try:
        run.run()
    finally:
        if session._active is run:
            session._active = None
    return collector.completion(run.n_tokens, run.finish_reason)

