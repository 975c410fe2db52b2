# aksml scoring worker host.
#
# One copy of this code runs in every Python worker process of an aksml
# replica. The Go server starts the interpreter with a tiny bootstrap (-c) that
# reads this source from file descriptor 3 and executes it with AKSML_CONFIG
# (the JSON configuration, bytes) in its globals.
#
# Protocol (both directions on pipes; fd 3 = requests in, fd 4 = replies out):
# every message is a 5-byte header, a big-endian uint32 payload length and one
# kind byte, followed by the payload. The server may write the next request
# while run() serves one (at most one waits in the pipe); the host reads and
# answers requests strictly in order, reads exactly one message at a time,
# and reads a request only once the reply to the one before is written in
# full (while a response streams it reads, to find a cancel, and keeps what
# else arrives for later).
#
#   Go -> Python   R  run: payload is the raw request body
#                  U  run with request ids (data collection or telemetry
#                     on): uint8 n, n bytes of the request id, uint8 m, m
#                     bytes of the caller's id, then the raw body
#                  Q  request with metadata: uint32 n, n bytes of JSON
#                     {method, path, query, headers}, then the body
#                  X  cancel the response being streamed (the client left):
#                     uint32, the number of the request whose stream to
#                     stop (requests R, U, Q and B count from 1 in the
#                     order read); ignored when that stream has ended
#                  B  a batch for run_batch (batching on): uint32 n, then
#                     per request uint32 length and the raw body
#   Python -> Go   I  init succeeded: JSON {mode, wants_headers, schema...}
#                  F  init failed: JSON {traceback, summary} (the process
#                     then exits 1); the server logs the traceback, once for
#                     the replica, and names the summary in its error
#                  O  run succeeded: the JSON-encoded return value
#                  E  run failed: JSON {status, message}
#                  P  raw HTTP reply: uint32 n, n bytes of JSON
#                     {status, headers}, then the body
#                  N  the answers to a batch: uint32 n, then per request
#                     one kind byte (O, E or P as below), uint32 length and
#                     that kind's payload
#                  S  streamed HTTP reply starts: uint32 n, n bytes of JSON
#                     {status, headers}; then C frames (one chunk each) and
#                     a Z frame (empty, or "E" when the body raised)
#
# Records and telemetry of a request (when data collection or telemetry is
# on) leave in the same write as its reply, on fd 4, before the reply frame
# (O, E, P, or Z ending a stream); the server hands them to its background
# writers, so sending them never waits for storage:
#                  D  a ModelDataCollector record (see the shim)
#                  L  telemetry, what run() printed while serving one
#                     request: uint8 n, n bytes of the request id, uint8 m,
#                     m bytes of the caller's id, float64 (big-endian) Unix
#                     seconds when the request started, then parts: one
#                     byte (o stdout, e stderr, l the number of characters
#                     not kept, as decimal text), uint32 n, n bytes of
#                     UTF-8; consecutive parts of a stream are one text,
#                     split into lines by the server
# Side channel (fd 5, when data collection or telemetry is on, read by the
# server in the background): D frames collected outside a request (init(),
# a thread of the script after the reply) or beyond a megabyte in one
# request.
#
# stdout and stderr belong to the user's script; they are the replica log.

import os
import sys
import json
import select
import struct
import inspect
import traceback
import importlib.abc
import importlib.util
import linecache

_RFD = 3
_WFD = 4
_HDR = struct.Struct(">IB")
_U32 = struct.Struct(">I")


# ---------------------------------------------------------------- framing

def _read_exact(n):
    parts = []
    while n > 0:
        chunk = os.read(_RFD, min(n, 1 << 20))
        if not chunk:
            raise EOFError("request pipe closed")
        parts.append(chunk)
        n -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


_inq = []  # messages read while a response streamed, served next
_seq = 0  # requests read (R, U, Q, B), as the server numbers them


def _read_frame():
    # The header, then exactly the payload: a request the server queued
    # behind this one stays in the pipe until the host is done with this
    # one, so the server can tell that the host never read it (and send it
    # to another worker if this one dies).
    n, kind = _HDR.unpack(_read_exact(5))
    return kind, (_read_exact(n) if n else b"")


def _read_msg():
    if _inq:
        return _inq.pop(0)
    return _read_frame()


def _write_all(data):
    n = os.write(_WFD, data)
    if n < len(data):
        view = memoryview(data)[n:]
        while view:
            n = os.write(_WFD, view)
            view = view[n:]


def _send(kind, payload):
    if (_cap is not None or _REQ.pending) and kind in (79, 69, 90):  # O, E, Z: the reply ends
        _write_all(_end_request(_HDR.pack(len(payload), kind), payload))
        return
    _write_all(_HDR.pack(len(payload), kind) + payload)


def _send_meta(kind, meta, body):
    m = json.dumps(meta).encode("utf-8")
    side = b""
    if (_cap is not None or _REQ.pending) and kind == 80:  # P
        side = _end_request()
    _write_all(side + _HDR.pack(4 + len(m) + len(body), kind) + _U32.pack(len(m)) + m + body)


def _split_meta(payload):
    (n,) = _U32.unpack_from(payload)
    meta = json.loads(payload[4:4 + n])
    return meta, payload[4 + n:]


# ---------------------------------------------------------------- request context

import time
import threading

_now = time.time
_F64 = struct.Struct(">d")
_PART1 = struct.Struct(">dcI")  # an L frame's start time, then its first part's stream and length

# _aksml_request holds the ids of the request being served (empty between
# requests), for the shims (ModelDataCollector's correlation id), and the
# lock that orders writes to the side channel.
# It is an object with slots, not a module: its attributes are set a few
# times a request, and a module's setattr costs several times more.


class _RequestContext(object):
    __slots__ = ("id", "client", "lock", "pending", "pending_size", "__name__")


_REQ = _RequestContext()
_REQ.__name__ = "_aksml_request"
_REQ.id = ""
_REQ.client = ""
_REQ.lock = threading.Lock()
# While a request is served, the frames of the shims (ModelDataCollector's
# records) wait in pending (a list of bytes; pending_size bytes in all) and
# leave with the reply, in the same write. None outside requests (init):
# frames are written to the side channel at once.
_REQ.pending = None
_REQ.pending_size = 0
sys.modules["_aksml_request"] = _REQ


def _side_fd(var="AKSML_TELEMETRY_FD"):
    try:
        return int(os.environ.get(var, ""))
    except ValueError:
        return -1


_MAX_PRINT = 64 << 10  # scoring.MaxPrintBytes


class _Capture(object):
    """What run() prints while serving one request, for telemetry: runs of
    writes to one stream, (stream byte, [text, ...]), at most _MAX_PRINT
    characters (lost counts the rest)."""

    __slots__ = ("parts", "size", "lost", "t", "ids", "last", "texts")

    def __init__(self, ids):
        self.parts = []
        self.size = 0
        self.lost = 0
        self.t = _now()
        self.ids = ids
        self.last = None
        self.texts = None

    def frame(self, out):
        """Appends the parts of the L frame of what was printed to out."""
        parts = self.parts
        if len(parts) == 1 and not self.lost:
            # The common case, one run of writes to one stream: the
            # frame in four parts, its header first.
            stream, texts = parts[0]
            b = (texts[0] if len(texts) == 1 else "".join(texts)).encode("utf-8", "replace")
            ids = self.ids
            out += (_HDR.pack(len(ids) + _PART1.size + len(b), 76), ids, _PART1.pack(self.t, stream, len(b)), b)
            return
        at = len(out)
        ids = self.ids
        out += (None, ids, _F64.pack(self.t))
        size = len(ids) + 8
        pack = _U32.pack
        for stream, texts in self.parts:
            b = "".join(texts).encode("utf-8", "replace")
            out += (stream, pack(len(b)), b)
            size += 5 + len(b)
        if self.lost:
            b = str(self.lost).encode()
            out += (b"l", pack(len(b)), b)
            size += 5 + len(b)
        out[at] = _HDR.pack(size, 76)  # 'L'


_cap = None  # the _Capture of the request being served, with telemetry on


class _Tee(object):
    """Wraps sys.stdout or sys.stderr: everything still goes to the stream
    (the replica log); with telemetry on, what is written during a request
    is also captured."""

    def __init__(self, stream, name):
        self._stream = stream
        self._write = stream.write
        self._name = b"o" if name == "stdout" else b"e"

    def write(self, s):
        n = self._write(s)
        c = _cap
        if c is not None and s:
            # The stream took s: it is a str.
            size = c.size + len(s)
            if size > _MAX_PRINT:
                c.lost += len(s)
            elif c.last is self._name:
                c.size = size
                c.texts.append(s)
            else:
                c.size = size
                c.last = self._name
                c.texts = [s]
                c.parts.append((self._name, c.texts))
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_tel_fd = -1
_builtin_print = None
_out = _err = None  # the worker's own stdout and stderr, set by _main


def _print(*args, sep=" ", end="\n", file=None, flush=False):
    """print: to the worker's stdout or stderr (the replica log), the line
    goes in one write, and with telemetry on it enters the capture once;
    the built-in print writes each argument, separator and end apart, a
    system call each on the unbuffered streams. Anything else is the
    built-in print's."""
    if file is None:
        file = sys.stdout
    tee = type(file) is _Tee
    if (not tee and file is not _out and file is not _err) or \
            (sep is not None and type(sep) is not str) or (end is not None and type(end) is not str):
        return _builtin_print(*args, sep=sep, end=end, file=file, flush=flush)
    if sep is None:
        sep = " "
    if end is None:
        end = "\n"
    s = sep.join(map(str, args)) + end
    if not tee:
        file.write(s)
        if flush:
            file.flush()
        return
    # _Tee.write, inline.
    file._write(s)
    c = _cap
    if c is not None and s:
        name = file._name
        size = c.size + len(s)
        if size > _MAX_PRINT:
            c.lost += len(s)
        elif c.last is name:
            c.size = size
            c.texts.append(s)
        else:
            c.size = size
            c.last = name
            c.texts = [s]
            c.parts.append((name, c.texts))
    if flush:
        file.flush()


def _ids_bytes(req_id, client):
    a = req_id.encode("utf-8", "replace")[:255]
    b = client.encode("utf-8", "replace")[:255]
    return bytes((len(a),)) + a + bytes((len(b),)) + b


def _begin_request(req_id, client, ids=None):
    global _cap
    _REQ.id = req_id
    _REQ.client = client
    if _tel_fd >= 0:
        _cap = _Capture(ids if ids is not None else _ids_bytes(req_id, client))


def _end_request(*tail):
    """Forget the request being served and return its frames, to be sent
    with its reply: the records it collected and, with telemetry on, what
    it printed, followed by tail (the reply's frame). Called when the reply
    is sent, and after it (the reply failed to encode; a stream's end), to
    forget the request's ids."""
    global _cap
    c = _cap
    _cap = None
    req = _REQ
    req.id = ""
    req.client = ""
    pending = req.pending
    req.pending = None
    req.pending_size = 0
    if pending is None:
        pending = []
    if c is not None and c.parts:
        c.frame(pending)
    if tail:
        pending += tail
    return b"".join(pending)


def _side_send(data):
    """Write frames to the side channel (records the reply did not take)."""
    if not data:
        return
    fd = _side_fd("AKSML_DC_FD")
    if fd < 0:
        return
    try:
        with _REQ.lock:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
    except OSError as ex:
        _dc = sys.modules.get("azureml.monitoring.modeldatacollector")
        if _dc is not None:
            _dc._channel_broken(ex)


# ---------------------------------------------------------------- shims

class _ShimLoader(importlib.abc.Loader):
    def __init__(self, name, source, filename):
        self.name = name
        self.source = source
        self.filename = filename

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.filename
        code = compile(self.source, self.filename, "exec")
        exec(code, module.__dict__)

    def get_source(self, name):
        return self.source


class _ShimFinder(importlib.abc.MetaPathFinder):
    """Serves the compatibility modules. It sits last on sys.meta_path, so a
    real installed package of the same name always wins."""

    def __init__(self, shims):
        self.shims = shims

    def find_spec(self, fullname, path=None, target=None):
        entry = self.shims.get(fullname)
        if entry is None:
            return None
        filename = "<aksml-shim>/" + fullname.replace(".", "/") + ("/__init__.py" if entry["package"] else ".py")
        source = entry["source"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        loader = _ShimLoader(fullname, source, filename)
        spec = importlib.util.spec_from_loader(fullname, loader, origin=filename, is_package=entry["package"])
        return spec


# ---------------------------------------------------------------- user script

class _BadInput(Exception):
    status = 400


class _UnsupportedInput(Exception):
    status = 415


def _parse_value(s):
    try:
        return json.loads(s)
    except ValueError:
        return s


def _query_params(query):
    from urllib.parse import parse_qsl
    grouped = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        grouped.setdefault(k, []).append(_parse_value(v))
    return {k: (v[0] if len(v) == 1 else v) for k, v in grouped.items()}


def _user_tb(tb):
    # Drop the host's own frames so a traceback starts in the user's code.
    while tb is not None and tb.tb_frame.f_code.co_filename in ("<aksml-host>", "<string>"):
        tb = tb.tb_next
    return tb


def _json_default(o):
    # Forgiving where Azure is strict: numpy and pandas results are converted
    # instead of failing with "Object of type ndarray is not JSON serializable".
    tolist = getattr(o, "tolist", None)
    if tolist is not None:
        return tolist()
    to_dict = getattr(o, "to_dict", None)
    if to_dict is not None:
        try:
            return to_dict(orient="records")
        except TypeError:
            return to_dict()
    item = getattr(o, "item", None)
    if item is not None:
        return item()
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


_dumps = json.JSONEncoder(default=_json_default).encode


def _raw_requested():
    for name in ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "_rawHttpRequested", False):
            return True
    return False


def _request_class():
    for name in ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request"):
        mod = sys.modules.get(name)
        cls = getattr(mod, "AMLRequest", None) if mod is not None else None
        if cls is not None and hasattr(cls, "_aksml_from_parts"):
            return cls
    import importlib
    # The real modules are Flask based; build a Flask request for them.
    try:
        import flask
        return flask.Request
    except ImportError:
        mod = importlib.import_module("azureml.contrib.services.aml_request")
        return mod.AMLRequest


def _make_request(meta, body):
    cls = _request_class()
    maker = getattr(cls, "_aksml_from_parts", None)
    if maker is not None:
        return maker(meta, body)
    # A real azureml package: the environ builder of the AMLRequest shim,
    # served by _ShimFinder under its own name.
    from _aksml_wsgi import environ
    return cls(environ(meta, body))


def _is_response(o):
    return hasattr(o, "status_code") and hasattr(o, "headers") and hasattr(o, "get_data")


class _Script:
    def __init__(self, cfg):
        self.cfg = cfg

    def load(self):
        path = self.cfg["entry_script"]
        spec = importlib.util.spec_from_file_location("entry_module", path)
        if spec is None:
            raise ImportError("cannot load entry script %s" % path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["entry_module"] = module
        spec.loader.exec_module(module)
        if not hasattr(module, "init"):
            raise AttributeError("entry script %s does not define an init() function" % path)
        if not hasattr(module, "run"):
            raise AttributeError("entry script %s does not define a run() function" % path)
        drv = getattr(module, "driver_module", None)
        if drv is not None and inspect.ismodule(drv) and hasattr(drv, "run"):
            self.run = drv.run
        else:
            self.run = module.run
        self.init = module.init
        rb = getattr(module, "run_batch", None)
        self.run_batch = rb if callable(rb) else None
        self._analyze()

    def _analyze(self):
        params = list(inspect.signature(self.run).parameters.values())
        for p in params:
            if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise TypeError("run() cannot accept positional-only arguments, *args, or **kwargs")
        self.wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            raise TypeError("run() needs to accept an argument for input data")
        self.params = params
        self.first = params[0].name
        from inference_schema.schema_util import is_schema_decorated, get_input_schema, get_output_schema
        decorated = is_schema_decorated(self.run)
        raw = _raw_requested()
        if raw and decorated:
            raise TypeError("run() cannot be decorated with both @rawhttp and @input_schema")
        self.mode = "raw" if raw else ("schema" if decorated else "plain")
        self.input_schema = get_input_schema(self.run) if decorated else None
        self.output_schema = get_output_schema(self.run) if decorated else None

    def info(self):
        return {
            "mode": self.mode,
            "wants_headers": self.wants_headers,
            "input_schema": self.input_schema or None,
            "output_schema": self.output_schema or None,
            "pid": os.getpid(),
            "batch": self.run_batch is not None,
        }

    # -- per request

    def kwargs(self, kind, payload):
        if kind == 82:  # 'R'
            if self.mode == "plain":
                try:
                    return {self.first: payload.decode("utf-8")}
                except UnicodeDecodeError as ex:
                    raise _BadInput("Input cannot be decoded as UTF-8: %s" % ex)
            meta, body = {"method": "POST", "headers": []}, payload
        else:
            meta, body = _split_meta(payload)
            if "id" in meta:
                _begin_request(meta.get("id", ""), meta.get("client", ""))
        method = meta.get("method", "POST")
        if self.mode == "raw":
            kw = {self.first: _make_request(meta, body)}
        elif method == "GET":
            params = _query_params(meta.get("query", ""))
            if self.mode == "plain":
                kw = {self.first: json.dumps(params)}
            else:
                kw = self._extract(params)
        elif self.mode == "plain":
            try:
                kw = {self.first: body.decode("utf-8")}
            except UnicodeDecodeError as ex:
                raise _BadInput("Input cannot be decoded as UTF-8: %s" % ex)
        else:
            ctype = ""
            for k, v in meta.get("headers", []):
                if k.lower() == "content-type":
                    ctype = v.lower()
            if ctype and "json" not in ctype:
                raise _UnsupportedInput("Expects Content-Type to be application/json")
            try:
                parsed = json.loads(body)
            except ValueError as ex:
                if body:
                    raise _BadInput("POST body could not be decoded as JSON: %s" % ex)
                raise _BadInput("POST body is empty. Expecting a JSON dictionary.")
            if not isinstance(parsed, dict):
                raise _BadInput("POST body should be a JSON dictionary.")
            kw = self._extract(parsed)
        if self.wants_headers:
            kw["request_headers"] = {k: v for k, v in meta.get("headers", [])}
        return kw

    def _extract(self, body):
        out = {}
        for p in self.params:
            v = body.get(p.name, p.default)
            if v is inspect.Parameter.empty:
                raise _BadInput("A value is not provided for the %r parameter." % p.name)
            out[p.name] = v
        return out


_RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


def _serve(script):
    global _cap, _seq
    run = script.run
    plain = script.mode == "plain" and not script.wants_headers
    first = script.first
    dumps = _dumps
    send = _send
    read = _read_msg
    while True:
        try:
            kind, payload = read()
        except EOFError:
            return
        if kind == 88:  # 'X': a cancel that crossed the end of its stream
            continue
        _seq += 1
        if kind == 66:  # 'B': a batch for run_batch
            _serve_batch(script, payload)
            continue
        if kind == 85:  # 'U': the request's ids, then as 'R' (_read_ids and
            # _begin_request, inline)
            n = payload[0]
            m = payload[1 + n]
            req = _REQ
            req.id = payload[1:1 + n].decode("utf-8", "replace")
            req.client = payload[2 + n:2 + n + m].decode("utf-8", "replace") if m else ""
            if _tel_fd >= 0:
                _cap = _Capture(payload[:2 + n + m])
            payload = payload[2 + n + m:]
            kind = 82
        _REQ.pending = []
        try:
            if plain and kind == 82:
                try:
                    data = payload.decode("utf-8")
                except UnicodeDecodeError as ex:
                    raise _BadInput("Input cannot be decoded as UTF-8: %s" % ex)
                out = run(**{first: data})
            else:
                out = run(**script.kwargs(kind, payload))
            if _is_response(out):
                _reply_response(out)
            else:
                send(79, dumps(out).encode("utf-8"))  # 'O'
        except (_BadInput, _UnsupportedInput) as ex:
            send(69, json.dumps({"status": ex.status, "message": str(ex)}).encode("utf-8"))
        except Exception as ex:
            sys.stderr.write("Encountered Exception: " + "".join(
                traceback.format_exception(type(ex), ex, _user_tb(ex.__traceback__))))
            sys.stderr.flush()
            # Only the generic message goes back: exception text can hold
            # data, and azmlinfsrv sends none.
            send(69, json.dumps({"status": 500, "message": _RUN_FAILED}).encode("utf-8"))
        if _REQ.id or _cap is not None or _REQ.pending is not None:
            _side_send(_end_request())


_ANSWER = struct.Struct(">BI")


def _run_failed():
    return (69, json.dumps({"status": 500, "message": _RUN_FAILED}).encode("utf-8"))


def _batch_answer(out):
    """One element of what run_batch returned, as (kind, payload): an
    exception instance fails that request alone (500, traceback to the log),
    an AMLResponse is sent as it is, anything else as JSON."""
    if isinstance(out, BaseException):
        sys.stderr.write("Encountered Exception in run_batch for one input: " + "".join(
            traceback.format_exception(type(out), out, _user_tb(out.__traceback__))))
        sys.stderr.flush()
        return _run_failed()
    try:
        if _is_response(out):
            body = out.get_data()
            if isinstance(body, str):
                body = body.encode("utf-8")
            m = json.dumps({"status": int(out.status_code), "headers": _response_headers(out)}).encode("utf-8")
            return (80, _U32.pack(len(m)) + m + body)  # 'P'
        return (79, _dumps(out).encode("utf-8"))  # 'O'
    except Exception as ex:
        sys.stderr.write("Encountered Exception while encoding an answer of run_batch: " + "".join(
            traceback.format_exception(type(ex), ex, _user_tb(ex.__traceback__))))
        sys.stderr.flush()
        return _run_failed()


def _serve_batch(script, payload):
    """Runs one batch: run_batch gets the bodies (str, as run(raw_data) gets
    one) and returns one answer per input, in order. A body that is not
    UTF-8 is answered 400 and left out; an exception raised by run_batch,
    or a result that is not a list of the inputs' length, fails every
    request of the batch."""
    (n,) = _U32.unpack_from(payload)
    off = 4
    answers = [None] * n
    inputs = []
    where = []
    for i in range(n):
        (size,) = _U32.unpack_from(payload, off)
        off += 4
        raw = payload[off:off + size]
        off += size
        try:
            inputs.append(raw.decode("utf-8"))
            where.append(i)
        except UnicodeDecodeError as ex:
            answers[i] = (69, json.dumps({"status": 400, "message": "Input cannot be decoded as UTF-8: %s" % ex}).encode("utf-8"))
    _REQ.pending = []
    if inputs:
        try:
            out = script.run_batch(inputs)
            if isinstance(out, (str, bytes, dict)) or out is None:
                raise TypeError("run_batch returned %s; it must return a list with one answer per input" % type(out).__name__)
            if not isinstance(out, (list, tuple)):
                tolist = getattr(out, "tolist", None)
                out = tolist() if tolist is not None else list(out)
            if len(out) != len(inputs):
                raise ValueError("run_batch returned %d answers for %d inputs; it must return one answer per input, in order" % (len(out), len(inputs)))
        except Exception as ex:
            sys.stderr.write("Encountered Exception in run_batch: " + "".join(
                traceback.format_exception(type(ex), ex, _user_tb(ex.__traceback__))))
            sys.stderr.flush()
            failed = _run_failed()
            for i in where:
                answers[i] = failed
        else:
            for i, o in zip(where, out):
                answers[i] = _batch_answer(o)
    # The records run_batch collected leave with the answers, before them.
    side = _end_request() if (_REQ.id or _cap is not None or _REQ.pending is not None) else b""
    parts = [side, None, _U32.pack(n)]
    size = 4
    for k, p in answers:
        parts.append(_ANSWER.pack(k, len(p)))
        parts.append(p)
        size += 5 + len(p)
    parts[1] = _HDR.pack(size, 78)  # 'N'
    _write_all(b"".join(parts))


def _response_headers(resp):
    headers = []
    items = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
    for k, v in items:
        if k.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        headers.append([str(k), str(v)])
    return headers


def _cancelled():
    """Whether the server asked to stop the stream under way. What else
    arrives meanwhile (a request queued behind this one) is kept in _inq,
    to be served after the stream."""
    while True:
        try:
            ready, _, _ = select.select([_RFD], [], [], 0)
        except (OSError, ValueError):
            return False
        if not ready:
            return False
        try:
            kind, payload = _read_frame()
        except EOFError:
            return True
        if kind != 88:
            _inq.append((kind, payload))
        elif len(payload) == 4 and _U32.unpack(payload)[0] == _seq & 0xFFFFFFFF:
            return True


def _stream_response(resp):
    """Send a response whose body is an iterable (a generator) chunk by chunk,
    each as soon as it is produced, as azmlinfsrv (Flask under gunicorn)
    does."""
    _send_meta(83, {"status": int(resp.status_code), "headers": _response_headers(resp)}, b"")  # 'S'
    it = resp.iter_encoded() if hasattr(resp, "iter_encoded") else iter(resp.response)
    failed = b""
    try:
        for chunk in it:
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if not chunk:
                continue
            _send(67, bytes(chunk))  # 'C'
            if _cancelled():
                break
    except Exception as ex:
        sys.stderr.write("Encountered Exception while streaming the response: " + "".join(
            traceback.format_exception(type(ex), ex, _user_tb(ex.__traceback__))))
        sys.stderr.flush()
        failed = b"E"
    finally:
        close = getattr(resp, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
    _send(90, failed)  # 'Z'


def _reply_response(resp):
    if getattr(resp, "is_streamed", False):
        _stream_response(resp)
        return
    body = resp.get_data()
    if isinstance(body, str):
        body = body.encode("utf-8")
    _send_meta(80, {"status": int(resp.status_code), "headers": _response_headers(resp)}, body)  # 'P'


def _main(config):
    cfg = json.loads(config)
    os.set_inheritable(_RFD, False)
    os.set_inheritable(_WFD, False)
    # fd 5, when data collection is on: the records of
    # azureml.monitoring.ModelDataCollector (D frames: uint32 n, n bytes of
    # JSON metadata, then the marshal data; see the shim), read by the server
    # in the background.
    if os.environ.get("AKSML_DC_FD"):
        try:
            os.set_inheritable(int(os.environ["AKSML_DC_FD"]), False)
        except (OSError, ValueError):
            pass
    sys.meta_path.append(_ShimFinder(cfg["shims"]))
    # With telemetry on, what the script prints during a request is
    # captured as it goes to the log (fd 5 carries it to the server).
    global _tel_fd, _out, _err, _builtin_print
    _tel_fd = _side_fd()
    if _tel_fd >= 0:
        try:
            os.set_inheritable(_tel_fd, False)
        except OSError:
            pass
        sys.stdout = _Tee(sys.stdout, "stdout")
        sys.stderr = _Tee(sys.stderr, "stderr")
    # print writes a line to the log in one piece (see _print).
    _out, _err = sys.stdout, sys.stderr
    import builtins
    _builtin_print = builtins.print
    builtins.print = _print
    # As in azmlinfsrv under gunicorn: the app root (the working directory)
    # first, then the interpreter's own entries, then the source directory;
    # the entry script's directory comes last so a sibling module imports.
    if "" in sys.path:
        sys.path.remove("")
    app_root = os.getcwd()
    if app_root in sys.path:
        sys.path.remove(app_root)
    sys.path.insert(0, app_root)
    for d in (cfg["source_dir"], os.path.dirname(cfg["entry_script"])):
        if d and d not in sys.path:
            sys.path.append(d)
    script = _Script(cfg)
    try:
        script.load()
        print("Invoking user's init function", file=sys.stderr, flush=True)
        script.init()
        print("User's init has completed successfully", file=sys.stderr, flush=True)
        info = script.info()
    except BaseException as ex:
        tb = "".join(traceback.format_exception(type(ex), ex, _user_tb(ex.__traceback__)))
        summary = "".join(traceback.format_exception_only(type(ex), ex)).strip()
        # The server writes the traceback to the log after this worker's
        # earlier output, once however many workers fail the same way.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        try:
            _send(70, json.dumps({"traceback": tb, "summary": summary}).encode("utf-8"))  # 'F'
        except OSError:
            try:
                sys.stderr.write("Encountered Exception during init: " + tb)
                sys.stderr.flush()
            except BaseException:
                pass
        os._exit(1)
    try:
        os.write(2, b"\x1eaksml-init-done\n")  # the server waits for this line
    except OSError:
        pass
    _send(73, json.dumps(info).encode("utf-8"))  # 'I'
    _serve(script)


_main(AKSML_CONFIG)  # noqa: F821 (set by the bootstrap)
