"""Batched generation: Batch (several sessions decoded together) and
BatchMember (one session's generation in it)."""

import contextlib
import threading
import weakref
from ctypes import byref, c_int64, c_void_p

from ._errors import Error, Misuse
from ._stream import _Collector, _Run, _overrides
from ._util import _FINISH_CANCELLED, _FINISH_ERROR, _FINISH_NAMES, _FINISH_NONE, _L, _OK, _cstr, _last_message, _raise
from .model import Model
from .params import _Params
from .session import Session

# ---------------------------------------------------------------------------
# Batched generation
# ---------------------------------------------------------------------------
class BatchMember:
    """One session generating in a Batch, as returned by Batch.add().

    text and reasoning grow while the member generates (its callback, if it
    has one, gets the same pieces as they come). Once the member has left
    the batch, done is True, n_tokens is final and finish_reason says why:
    "eos", "length", "stop", "context", "callback" (its callback returned a
    true value), "cancelled" (Session.cancel() or Batch.remove()), "closed"
    (its session or the batch was closed) or "error" (see error: the
    exception its callback raised, or the library's error)."""

    def __init__(self, batch, session, seq, callback):
        self.session = session
        self._batch = weakref.ref(batch)
        self._seq = seq
        self._out = _Collector(callback)
        self._run = None
        self._n_tokens = None
        self.finish_reason = None
        self.error = None

    @property
    def batch(self):
        """The Batch while the member generates in it, else None."""
        return None if self.done else self._batch()

    @property
    def done(self):
        return self.finish_reason is not None

    @property
    def text(self):
        """The answer text so far."""
        return self._out.text

    @property
    def reasoning(self):
        """The reasoning text so far (reasoning=True only)."""
        return self._out.reasoning

    @property
    def n_tokens(self):
        """Tokens generated so far."""
        if self._n_tokens is not None:
            return self._n_tokens
        return self.session.n_generated

    def result(self):
        """The member's Completion once it has left the batch (also when it
        was cancelled or closed: finish_reason tells); raises its error if
        it has one, and Misuse while it is still generating."""
        if not self.done:
            raise Misuse(-2, "the member is still generating; step the batch until it is done")
        if self.error is not None:
            raise self.error
        return self._out.completion(self.n_tokens, self.finish_reason)

    def _snapshot(self):
        """Reads what must survive the session being freed."""
        try:
            self._n_tokens = self.session.n_generated
        except Error:
            pass

    def _take_exception(self):
        """The exception a callback raised, once (it stays in error)."""
        trap = self._run.trap
        exc, trap.exc = trap.exc, None
        if exc is not None and self.error is None:
            self.error = exc
        return exc

    def _finish(self, why):
        """The library has taken the session out of the batch: flush the
        text held back by per-call stop strings, restore per-call
        parameters, and settle finish_reason. why: None when the member
        left on its own, else "cancelled" or "closed"."""
        run = self._run
        lib = _L()
        reason = None
        h = self.session._h
        if h is not None:
            self._n_tokens = lib.ds8b_session_n_generated(h)
            reason = lib.ds8b_session_finish_reason(h)
            try:
                if why is None and reason not in (_FINISH_CANCELLED, _FINISH_ERROR):
                    for c, t in run.stops.flush():
                        if run.emit(c, t):
                            break
                run.restore()
            except BaseException as e:  # noqa: B036 -- raised by Batch.step()
                run.trap.catch(e)
        if self.error is None and run.trap.exc is not None:
            self.error = run.trap.exc
        if self.error is not None:
            self.finish_reason = "error"
        elif why is not None:
            self.finish_reason = why
        elif reason == _FINISH_CANCELLED:
            if run.stops.matched:
                self.finish_reason = "stop"
            elif run.stop_requested == "callback":
                self.finish_reason = "callback"
            else:
                self.finish_reason = "cancelled"
        elif reason == _FINISH_ERROR:
            # The library keeps the message, not the code, of a member's error.
            msg = _cstr(lib.ds8b_session_errmsg(h))
            self.error = Error(None, msg or "the member's generation failed")
            self.finish_reason = "error"
        else:
            self.finish_reason = _FINISH_NAMES.get(reason) or "error"

    def __repr__(self):
        state = "done: %s" % self.finish_reason if self.done else "generating"
        return "<ds8b.BatchMember %s, %d chars>" % (state, len(self.text))


class Batch:
    """Several sessions of one model generating together (ds8b_batch): each
    step() samples one token for every member and evaluates all of them in
    one forward pass that reads the weights once. A member produces exactly
    the text it would produce generating alone.

        with model.batch(n_threads=2) as batch:
            a = batch.add(s1, "The blacksmith said", callback=show, max_tokens=40)
            b = batch.add(s2, "Once upon a time", max_tokens=40, seed=7)
            while batch.step():       # one token for every member
                pass                  # e.g. one frame of the game
            print(a.text, b.result().finish_reason)

    Batch(model, n_threads=None): the batch's own worker threads for the
    shared steps (None: the library's default, one per CPU); threads= is
    accepted as another name for it. A member joins with add() (which
    evaluates its prompt at once on the session's threads) and leaves on
    its own stop conditions, Session.cancel() (from any thread), remove(),
    or when its session or the batch is closed. Stream callbacks run inside
    step() and must not add, remove, step or close anything of the batch
    (Misuse); returning True ends that member. Use a batch and its sessions
    from one thread at a time; a call from another thread waits for a
    running step. Context manager; closing the batch (or its model) ends
    the members still generating (finish_reason "closed")."""

    def __init__(self, model, n_threads=None, *, threads=None):
        self._h = None
        if not isinstance(model, Model):
            raise TypeError("model must be a ds8b.Model")
        if threads is not None:
            if n_threads is not None:
                raise TypeError("give n_threads or threads, not both")
            n_threads = threads
        mh = model._handle()
        self.model = model
        self._members = {}            # Session -> BatchMember, in join order
        self._lock = threading.Lock()  # held by every call into the C batch
        self._owner = None            # the thread holding _lock
        self._seq = 0
        lib = _L()
        h = c_void_p()
        with _Params({"n_threads": n_threads}, ("n_threads",), "Batch()") as bag:
            rc = lib.ds8b_batch_create(mh, bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
        if rc != _OK:
            _raise(rc, msg)
        self._h = h
        # The model is not freed while a batch exists: Model.close() closes it.
        model._sessions.add(self)

    @contextlib.contextmanager
    def _guard(self, what):
        me = threading.get_ident()
        if self._owner == me:
            raise Misuse(-2, "cannot %s from inside Batch.step() (a stream callback); return "
                         "True from the callback, or call Session.cancel(), to end a member"
                         % what)
        with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    def _handle(self):
        h = self._h
        if h is None:
            raise Misuse(-2, "the batch is closed")
        if self.model._h is None:
            raise Misuse(-2, "the model of this batch is closed")
        return h

    def _forget(self, m):
        self._members.pop(m.session, None)
        if m.session._member is m:
            m.session._member = None

    def _left(self, m, why):
        """m's session is no longer in the C batch: settle m."""
        self._forget(m)
        m._finish(why)

    def add(self, session, prompt="", callback=None, max_tokens=None, *, temperature=None,
            top_k=None, top_p=None, min_p=None, repeat_penalty=None, seed=None, stop=None,
            reasoning=False, start_reasoning=False, add_special=None):
        """Starts a generation on session, as Session.complete() would, and
        makes it a member; returns its BatchMember. The prompt is evaluated
        now; tokens come with step().

        callback(text, channel), if given, is called from step() with each
        piece of this member's text; a true return value ends the member
        (finish_reason "callback"), and an exception it raises ends the
        member and is re-raised from step(). The other arguments are those
        of Session.complete(): per-call overrides (restored when the member
        leaves; seed= reseeds), stop strings, reasoning, add_special.
        While a member, the session refuses calls that change it (Misuse)."""
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable as callback(text, channel)")
        overrides = _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed)
        lib = _L()
        with self._guard("add a member"):
            bh = self._handle()
            sh = session._idle()
            if session._member is not None:
                raise Misuse(-2, "the session already generates in a batch; remove it first")
            pb, flags = session._prompt_flags(prompt, reasoning, start_reasoning, add_special)
            self._seq += 1
            m = BatchMember(self, session, self._seq, callback)
            run = _Run(session, None, None, m._out.emit, max_tokens, stop, overrides)
            m._run = run
            # Registered before the call: once added, the library holds run.cb.
            self._members[session] = m
            session._member = m
            try:
                run._apply(run.overrides)
                rc = lib.ds8b_batch_add(bh, sh, pb, len(pb), flags, run.cb, None)
                msg = _cstr(lib.ds8b_batch_errmsg(bh)) if rc != _OK else ""
            except BaseException:
                # e.g. KeyboardInterrupt: take the session out again if it got in
                if lib.ds8b_batch_remove(bh, sh) == _OK:
                    self._left(m, "cancelled")
                else:
                    self._forget(m)
                    run.restore()
                raise
            if rc != _OK:
                self._forget(m)
                run.restore()
                _raise(rc, msg)
        return m

    def step(self):
        """Generates one token for every member (their callbacks run here)
        and returns the number of members still generating.

        Raises the exception a member's callback raised (that member has
        left; the others carry on with the next step), or the error of the
        shared forward pass (the batch stays usable and the next step
        evaluates the tokens already sampled)."""
        lib = _L()
        with self._guard("step the batch"):
            h = self._handle()
            n = c_int64()
            rc = lib.ds8b_batch_step(h, byref(n))
            msg = _cstr(lib.ds8b_batch_errmsg(h)) if rc != _OK else ""
            stepped = list(self._members.values())
            for m in stepped:
                sh = m.session._h
                if sh is None:  # not expected: closing a session goes through _left
                    self._left(m, "closed")
                elif lib.ds8b_session_finish_reason(sh) != _FINISH_NONE:
                    self._left(m, None)
            errors = []
            for m in stepped:
                exc = m._take_exception()
                if exc is not None:
                    errors.append(exc)
                    if not m.done:  # routed here by the unraisable hook: end it too
                        m._run.stop("error")
        if errors:
            errors.sort(key=lambda e: not isinstance(e, KeyboardInterrupt))
            raise errors[0]
        if rc != _OK:
            _raise(rc, msg)
        return n.value

    def run(self):
        """Steps until no member is left; returns the members that finished
        meanwhile, in the order they joined."""
        done = []
        while True:
            before = list(self._members.values())
            n = self.step()
            done.extend(m for m in before if m.done)
            if n <= 0:
                break
        done.sort(key=lambda m: m._seq)
        return done

    def remove(self, session):
        """Takes session out of the batch: its generation ends with
        finish_reason "cancelled". Returns its BatchMember; InvalidArgument
        if the session is not a member."""
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        lib = _L()
        with self._guard("remove a member"):
            bh = self._handle()
            rc = lib.ds8b_batch_remove(bh, session._handle())
            if rc != _OK:
                _raise(rc, _cstr(lib.ds8b_batch_errmsg(bh)))
            m = self._members.get(session)
            if m is not None:
                self._left(m, "cancelled")
                m._take_exception()
        return m

    @property
    def members(self):
        """The BatchMembers still generating, in the order they joined."""
        return list(self._members.values())

    def __contains__(self, session):
        return session in self._members

    def __len__(self):
        """Members still generating (ds8b_batch_size)."""
        if self._owner == threading.get_ident():
            return max(0, _L().ds8b_batch_size(self._handle()))
        with self._lock:
            return max(0, _L().ds8b_batch_size(self._handle()))

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Frees the batch; members still generating end ("closed") and
        their sessions stay usable. Safe to repeat."""
        if getattr(self, "_h", None) is None:
            return
        with self._guard("close the batch"):
            if self._h is None:
                return
            h, self._h = self._h, None
            try:
                _L().ds8b_batch_free(h)
            finally:
                for m in list(self._members.values()):
                    self._left(m, "closed")
                    m._take_exception()
        try:
            self.model._sessions.discard(self)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self.closed:
            return "<ds8b.Batch closed>"
        return "<ds8b.Batch %d members on %r>" % (len(self._members), self.model)
