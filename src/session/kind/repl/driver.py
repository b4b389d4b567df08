# The driver of a stablehand `repl` session, run as `python3 -u -c <this file>`.
#
# It reads one JSON request per line from a private copy of stdin and runs it in one
# persistent namespace (a fresh `__main__` module). The code's own output goes to fds 1 and 2
# as it is produced. When a request is done, the driver writes `TOKEN\n` on stderr and then
# `TOKEN <json>\n` on stdout, where TOKEN is the request's 128-bit nonce, so the runtime
# knows both streams are complete; the JSON carries the value, the error and the status.
#
# Requests: {"op": "hello"|"exec"|"snapshot"|"restore", "token": ..., ...}; see
# src/session/kind/repl/mod.rs for the whole protocol. Python 3.7 or newer.

import sys

if sys.version_info < (3, 7):
    sys.stderr.write(
        "stablehand repl needs Python 3.7 or newer; this is %s\n" % sys.version.split()[0]
    )
    sys.exit(2)

import ast
import base64
import builtins
import io
import json
import linecache
import os
import pickle
import signal
import time
import traceback
import types

_G = globals()
_DRIVER = sys.modules.get("__main__")

# Private descriptors: the protocol must survive code that redirects or closes fds 0-2.
_IN = os.dup(0)
_OUT = os.dup(1)
_ERR = os.dup(2)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)  # code (and its children) read /dev/null unless an exec is interactive
os.close(_null)
del _null

for _s in (sys.stdout, sys.stderr):
    try:
        if (_s.encoding or "").lower().replace("-", "") != "utf8":
            _s.reconfigure(encoding="utf-8")
    except Exception:
        pass

# The namespace: a fresh __main__, so pickle finds the code's classes as __main__.Name.
_main = types.ModuleType("__main__")
_main.__builtins__ = builtins
_NS = _main.__dict__
sys.modules["__main__"] = _main
sys.argv = [""]
_RESERVED = frozenset(
    ("__name__", "__doc__", "__package__", "__loader__", "__spec__", "__builtins__")
)

MAX_TEXT = 100000  # characters kept of a value's repr or a traceback

IDLE, ACCEPTED, RUNNING, DONE = range(4)


class _State:
    phase = IDLE
    pending = False  # an interrupt arrived after the request was read, before the code ran
    user_handler = None  # a SIGINT handler the code installed
    count = 0
    loop = None
    libc = None


_S = _State()


class _Proto:
    """Lines from the runtime, read without read-ahead loss: interactive code reads from
    the same buffer."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def _fill(self):
        chunk = os.read(self.fd, 1 << 16)
        if chunk:
            self.buf += chunk
        else:
            self.eof = True

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def line(self):
        searched = 0
        while True:
            i = self.buf.find(b"\n", searched)
            if i >= 0:
                _S.phase = ACCEPTED  # an interrupt from now on is meant for this request
                data = self._take(i + 1)
                return data
            searched = len(self.buf)
            if self.eof:
                return None
            self._fill()

    def user_read(self, size, line):
        searched = 0
        while True:
            if line:
                i = self.buf.find(b"\n", searched)
                if i >= 0:
                    n = i + 1 if size is None or size < 0 else min(i + 1, size)
                    return self._take(n)
                searched = len(self.buf)
            if size is not None and 0 <= size <= len(self.buf):
                return self._take(size)
            if self.eof:
                return self._take(len(self.buf))
            self._fill()


_proto = _Proto(_IN)


class _Stdin(io.TextIOBase):
    """sys.stdin during an interactive exec: what the session sends."""

    encoding = "utf-8"
    errors = "replace"

    def readable(self):
        return True

    def isatty(self):
        return False

    def readline(self, size=-1):
        return _proto.user_read(size, True).decode("utf-8", "replace")

    def read(self, size=-1):
        return _proto.user_read(size, False).decode("utf-8", "replace")


def _on_sigint(signum, frame):
    phase = _S.phase
    if phase == RUNNING:
        h = _S.user_handler
        if h is signal.SIG_IGN:
            return None
        if callable(h) and h is not signal.default_int_handler:
            return h(signum, frame)
        raise KeyboardInterrupt
    if phase == ACCEPTED or (phase == IDLE and _proto.buf.strip()):
        _S.pending = True
    return None


signal.signal(signal.SIGINT, _on_sigint)


class _Quitter:
    """exit() and quit(): end the session, as the shell's `exit` does."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Use %s() or %s(code) to end the session" % (self.name, self.name)

    def __call__(self, code=None):
        e = SystemExit(code)
        e._stablehand_quit = True
        raise e


builtins.exit = _Quitter("exit")
builtins.quit = _Quitter("quit")


def _write(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _flush():
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            s.flush()
        except Exception:
            pass
    if _S.libc is None:
        _S.libc = False
        if "ctypes" in sys.modules:
            try:
                import ctypes

                _S.libc = ctypes.CDLL(None)
            except Exception:
                pass
    if _S.libc:
        try:
            _S.libc.fflush(None)  # C-level stdio of extensions
        except Exception:
            pass


def _clean(text):
    """A str that encodes as UTF-8 (lone surrogates escaped)."""
    if not isinstance(text, str):
        text = str(text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _cap(text):
    if len(text) <= MAX_TEXT:
        return text
    half = MAX_TEXT // 2
    return "%s\n... (%d characters omitted) ...\n%s" % (
        text[:half],
        len(text) - 2 * half,
        text[-half:],
    )


def _strip(tb):
    """The traceback without the driver's own frames."""
    keep = []
    while tb is not None:
        if tb.tb_frame.f_globals is not _G:
            keep.append(tb)
        tb = tb.tb_next
    for a, b in zip(keep, keep[1:]):
        a.tb_next = b
    if keep:
        keep[-1].tb_next = None
        return keep[0]
    return None


def _error(e):
    tb = _strip(e.__traceback__)
    try:
        text = "".join(traceback.format_exception(type(e), e, tb))
    except Exception:
        text = "%s\n" % type(e).__name__
    try:
        message = e.msg if isinstance(e, SyntaxError) and e.msg else str(e)
    except Exception:
        message = ""
    sys.last_type, sys.last_value, sys.last_traceback = type(e), e, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = e
    return {
        "type": type(e).__name__,
        "message": _cap(_clean(message)),
        "traceback": _cap(_clean(text)),
    }


def _ends_with_semicolon(code):
    """IPython's rule: a trailing `;` hides the value."""
    if ";" not in code:
        return False
    import tokenize

    skip = (
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.ENDMARKER,
        tokenize.INDENT,
        tokenize.DEDENT,
    )
    last = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type not in skip:
                last = tok
    except Exception:
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


_FLAGS = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_CO_COROUTINE = 0x80


def _call(co):
    if co.co_flags & _CO_COROUTINE:  # top-level await
        import asyncio

        if _S.loop is None or _S.loop.is_closed():
            _S.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(_S.loop)
        return _S.loop.run_until_complete(eval(co, _NS))
    return eval(co, _NS)


def _run(code, filename):
    """Runs `code`; returns the value of a last expression statement (None if there is none)."""
    tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST | _FLAGS, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(code):
        last = tree.body.pop()
    _call(compile(tree, filename, "exec", _FLAGS, dont_inherit=True))
    if last is None:
        return None
    expr = ast.Expression(last.value)
    return _call(compile(expr, filename, "eval", _FLAGS, dont_inherit=True))


def _exit_code(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        _write(_ERR, (_clean(code) + "\n").encode("utf-8"))
    except Exception:
        pass
    return 1


def _finish(code):
    """Ends the process: atexit handlers run, output is flushed."""
    _flush()
    import threading

    if threading.active_count() <= 1 or all(
        t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    ):
        raise SystemExit(code)
    try:
        import atexit

        atexit._run_exitfuncs()
    except Exception:
        pass
    _flush()
    os._exit(code)


def _exec(req):
    code = req.get("code") or ""
    _S.count += 1
    filename = "<exec-%d>" % _S.count
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    saved_stdin = sys.stdin
    if req.get("interactive"):
        sys.stdin = _Stdin()
    value = None
    error = None
    status = 0
    try:
        try:
            _S.phase = RUNNING
            if _S.pending:
                raise KeyboardInterrupt
            result = _run(code, filename)
            if result is not None:
                builtins._ = result
                value = _cap(_clean(repr(result)))
        finally:
            _S.phase = DONE
    except BaseException as e:
        if isinstance(e, SystemExit) and getattr(e, "_stablehand_quit", False):
            _finish(_exit_code(e.code))
        value = None
        error = _error(e)
        status = 130 if isinstance(e, KeyboardInterrupt) else 1
    finally:
        if req.get("interactive") and sys.stdin.__class__ is _Stdin:
            sys.stdin = saved_stdin
    if error is not None:
        _flush()
        _write(_ERR, error["traceback"].encode("utf-8"))
    return {"value": value, "error": error, "status": status}


# Namespace snapshots.


def _codec():
    try:
        import dill

        return "dill", dill
    except Exception:
        return "pickle", None


def _is_definition(name, value):
    """A function or class the code defined at top level (pickle can only refer to it)."""
    return (
        isinstance(value, (type, types.FunctionType))
        and getattr(value, "__module__", None) == "__main__"
        and getattr(value, "__qualname__", None) == name
    )


def _picklers(dill):
    base_p = dill.Pickler if dill else pickle.Pickler
    base_u = dill.Unpickler if dill else pickle.Unpickler

    class Pickler(base_p):
        root = None
        saved = frozenset()

        def persistent_id(self, obj):
            # Definitions are saved once, by name, so instances keep their class identity.
            if obj is self.root:
                return None
            if isinstance(obj, (type, types.FunctionType)) and (
                getattr(obj, "__module__", None) == "__main__"
            ):
                name = getattr(obj, "__qualname__", None)
                if name in self.saved and _NS.get(name) is obj:
                    return name
                if dill is None:
                    raise pickle.PicklingError(
                        "refers to %s, defined in the session; functions and classes "
                        "defined in the session are kept only when dill is installed" % name
                    )
            return None

    class Unpickler(base_u):
        def persistent_load(self, pid):
            if pid in _NS:
                return _NS[pid]
            raise _Missing(pid)

    return Pickler, Unpickler


class _Missing(Exception):
    def __str__(self):
        return "needs %s, which was not restored" % self.args[0]


def _reason(e):
    text = "%s: %s" % (type(e).__name__, _clean(e))
    return text if len(text) <= 300 else text[:300] + "..."


def _snapshot(req):
    limit = int(req.get("limit") or (64 << 20))
    codec, dill = _codec()
    Pickler, _ = _picklers(dill)
    names = [n for n in list(_NS) if n not in _RESERVED]
    defs = [n for n in names if _is_definition(n, _NS[n])]
    skipped = {}
    saved = set(defs) if dill else set()
    if not dill:
        for n in defs:
            skipped[n] = (
                "a function or class defined in the session: install dill in the "
                "session's Python to keep it"
            )
    order = [n for n in defs if n in saved] + [n for n in names if n not in defs]
    items = []
    modules = {}
    total = 0
    for n in order:
        if n not in _NS:
            continue
        v = _NS[n]
        if isinstance(v, types.ModuleType):
            mod = getattr(v, "__name__", None)
            if mod and sys.modules.get(mod) is v:
                modules[n] = mod
            else:
                skipped[n] = "a module that cannot be imported by name"
            continue
        f = io.BytesIO()
        p = Pickler(f, pickle.DEFAULT_PROTOCOL)
        p.root = v
        p.saved = frozenset(saved)
        try:
            p.dump(v)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            skipped[n] = _reason(e)
            saved.discard(n)
            continue
        data = f.getvalue()
        if total + len(data) > limit:
            skipped[n] = "too large: %d bytes would exceed the snapshot limit of %d" % (
                len(data),
                limit,
            )
            saved.discard(n)
            continue
        total += len(data)
        items.append((n, data))
    container = {
        "version": 1,
        "codec": codec,
        "python": sys.version.split()[0],
        "items": items,
        "modules": modules,
        "skipped": skipped,
        "cwd": _cwd(),
        "path": list(sys.path),
    }
    blob = pickle.dumps(container, protocol=4)
    return {
        "status": 0,
        "codec": codec,
        "blob": base64.b64encode(blob).decode("ascii"),
        "bytes": len(blob),
        "saved": [n for n, _ in items] + list(modules),
        "skipped": list(skipped),
        "reasons": skipped,
    }


def _cwd():
    try:
        return os.getcwd()
    except OSError:
        return None


def _restore(req):
    budget = float(req.get("budget_ms") or 5000) / 1000.0
    start = time.monotonic()
    container = pickle.loads(base64.b64decode(req.get("data") or ""))
    failed = dict(container.get("skipped") or {})
    restored = []
    cwd = container.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError:
            pass
    path = container.get("path")
    if isinstance(path, list):
        sys.path[:] = path + [p for p in sys.path if p not in path]
    import importlib

    for n, mod in (container.get("modules") or {}).items():
        try:
            _NS[n] = importlib.import_module(mod)
            restored.append(n)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            failed[n] = "import %s failed: %s" % (mod, _reason(e))
    _, dill = _codec()
    if container.get("codec") == "dill" and dill is None:
        note = " (saved with dill, which this Python cannot import)"
    else:
        note = ""
    _, Unpickler = _picklers(dill)
    pending = list(container.get("items") or [])
    while pending:
        retry = []
        for n, data in pending:
            if time.monotonic() - start > budget:
                failed[n] = "not restored: the restore ran out of time"
                continue
            try:
                _NS[n] = Unpickler(io.BytesIO(data)).load()
                restored.append(n)
            except KeyboardInterrupt:
                raise
            except _Missing as e:
                failed[n] = _reason(e) + note
                retry.append((n, data))
            except BaseException as e:
                failed[n] = _reason(e) + note
        if len(retry) == len(pending):
            break
        pending = retry
    for n in restored:
        failed.pop(n, None)
    return {
        "status": 0,
        "codec": container.get("codec"),
        "restored": restored,
        "skipped": list(failed),
        "reasons": failed,
    }


def _op(fn, req):
    try:
        try:
            _S.phase = RUNNING
            if _S.pending:
                raise KeyboardInterrupt
            return fn(req)
        finally:
            _S.phase = DONE
    except BaseException as e:
        return {"status": 130 if isinstance(e, KeyboardInterrupt) else 1, "error": _error(e)}


def _hello(req):
    return {
        "status": 0,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "pid": os.getpid(),
    }


def _handle(req):
    token = str(req.get("token") or "").encode("ascii", "replace")
    op = req.get("op") or "exec"
    if op == "exec":
        payload = _exec(req)
    elif op == "snapshot":
        payload = _op(_snapshot, req)
    elif op == "restore":
        payload = _op(_restore, req)
    elif op == "hello":
        payload = _hello(req)
    else:
        payload = {
            "status": 1,
            "error": {"type": "ProtocolError", "message": "unknown op %r" % op, "traceback": ""},
        }
    _S.phase = DONE
    try:
        # The session's cwd follows os.chdir in the REPL (and a resume starts there).
        payload["cwd"] = os.getcwd()
    except Exception:
        pass
    try:
        text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), default=_clean)
    except Exception as e:
        text = json.dumps({"status": 1, "error": _error(e)}, ensure_ascii=True, default=_clean)
    _flush()
    _write(_ERR, token + b"\n")
    _write(_OUT, token + b" " + text.encode("ascii") + b"\n")


def _main_loop():
    while True:
        try:
            _S.phase = IDLE
            line = _proto.line()
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                req = None
            if not isinstance(req, dict) or not req.get("token"):
                _write(
                    _ERR,
                    b"stablehand repl: input outside an interactive exec was ignored\n",
                )
                continue
            _handle(req)
            _S.pending = False
            handler = signal.getsignal(signal.SIGINT)
            if handler is not _on_sigint:
                _S.user_handler = handler
                signal.signal(signal.SIGINT, _on_sigint)
        except KeyboardInterrupt:
            continue  # an interrupt outside any code (through a handler the code installed)
    _finish(0)


_main_loop()
