"""aksml compatibility shim for azureml.monitoring.modeldatacollector.

ModelDataCollector collects model data (inputs, predictions, ...) of a
deployed service as CSV rows. When the service has data collection on
(AML_MODEL_DC_STORAGE_ENABLED=true in the worker's environment), each
collect() sends one record to the aksml scoring server over a pipe: a D
frame holding uint32 n, n bytes of the collector's JSON metadata (encoded
once: model and designation; version, collection, workspace and service
when not "default"; features, the feature names, when given), then the
tuple (timestamp, correlation id, rows) as marshal data (version 2 for a
few cells, else 4); rows are lists of str, int, float, bool and None
(other cells are converted first: numpy scalars to their value, lists,
dicts and arrays to their JSON text). The server buffers the record and, in the background,
writes its rows as csv.writer(lineterminator="\n") would to the
workspace's storage, so collect() never waits for storage (nor formats
CSV). With collection off, collect() is a
no-op that still returns a correlation context.

A record the server cannot take is reported on stderr (the replica log) and
never raises into run(): bad data must not fail a scoring request.
"""

import json
import marshal
import os
import struct
import sys
import threading
import time
import uuid

_HDR = struct.Struct(">IB")
_U32 = struct.Struct(">I")
_KIND_DATA = 68  # 'D'
_marshal = marshal.dumps

# A record above this size is not collected (its metadata and marshal data
# here; its metadata and CSV rows in the server).
MAX_RECORD_BYTES = 4 << 20

# Records of one request held back to leave with its reply, at most this
# many bytes (more are sent at once).
_PENDING_MAX = 1 << 20

_TS_COLUMN = "$aml_dc_scoring_timestamp"
_ID_COLUMN = "$aml_dc_correlation_id"

# The host's request context: the id of the request being served, the
# records waiting to leave with its reply, and the lock that orders writes
# to the side channel (shared with telemetry).
_req = sys.modules.get("_aksml_request")
_lock = getattr(_req, "lock", None) or threading.Lock()
_broken = []


def _version(rows):
    """The marshal version for rows (a non-empty list of lists): 2 for a
    few cells (version 4's table of references costs more than it saves
    there), else 4 (its strings are copied as they are, not encoded
    one by one)."""
    return 2 if len(rows) * len(rows[0]) <= 16 else 4


# Values sent as they are (exact types: a subclass goes through _cell).
_PLAIN = frozenset((str, int, float, bool, type(None)))
_plain = _PLAIN.issuperset


def _request_id():
    return getattr(_req, "id", "") or ""


_time = time.time
_strftime = time.strftime
_gmtime = time.gmtime
_second = (-1, "")


def _timestamp():
    """Now in UTC as 2026-03-07T12:00:00.123456Z (v1's scoring timestamp);
    the part up to the second is formatted once a second."""
    global _second
    t = _time()
    sec = int(t)
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, _strftime("%Y-%m-%dT%H:%M:%S.", _gmtime(sec)))
    us = int((t - sec) * 1e6)
    return f"{cached[1]}{_DIGITS3[us // 1000]}{_DIGITS3[us % 1000]}Z"


# "000" to "999": the microseconds as two table lookups, not a format.
_DIGITS3 = ["%03d" % i for i in range(1000)]


# numpy.ndarray and pandas.DataFrame once score.py has imported numpy and
# pandas (the shim never imports them itself), else None.
_ndarray = None
_DataFrame = None


def _find_types():
    global _ndarray, _DataFrame
    if _ndarray is None:
        np = sys.modules.get("numpy")
        if np is not None:
            _ndarray = getattr(np, "ndarray", None)
    if _DataFrame is None:
        pd = sys.modules.get("pandas")
        if pd is not None:
            _DataFrame = getattr(pd, "DataFrame", None)
    return _ndarray, _DataFrame


def _enabled():
    return os.environ.get("AML_MODEL_DC_STORAGE_ENABLED", "").strip().lower() == "true"


def _fd():
    try:
        return int(os.environ.get("AKSML_DC_FD", ""))
    except ValueError:
        return -1


def _log(msg):
    try:
        sys.stderr.write("ModelDataCollector: " + msg + "\n")
        sys.stderr.flush()
    except Exception:
        pass


class _NotSerializable(Exception):
    pass


def _cell(v, r, c):
    """A cell as a value marshal takes (an exact str, int, float, bool or
    None) that the server writes as csv.writer wrote v."""
    if v is None or type(v) in _PLAIN:
        return v
    # Subclasses (numpy.float64, an IntEnum, a str subclass) as csv.writer
    # writes them: a str's characters, a float's repr, str() of others.
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    item = getattr(v, "item", None)  # numpy scalars
    if item is not None and not hasattr(v, "__len__"):
        try:
            return item()
        except Exception:
            pass
    if isinstance(v, (list, tuple, dict)) or hasattr(v, "tolist"):
        if hasattr(v, "tolist"):
            v = v.tolist()
        try:
            return json.dumps(v)
        except (TypeError, ValueError) as ex:
            raise _NotSerializable("row %d column %d: %s" % (r, c, ex))
    raise _NotSerializable(
        "row %d column %d holds a value of type %s; numbers, strings, booleans, None, "
        "lists, dicts, numpy arrays and pandas DataFrames can be collected" % (r, c, type(v).__name__))


def _rows(data):
    """The rows of input_data: a pandas DataFrame, a numpy array, a list of
    rows, a flat list (one row), a dict (one row of its values) or a scalar.
    The rows may be input_data's own lists: they are only read."""
    if type(data) is list and data and type(data[0]) is list:
        for x in data:
            if type(x) is not list:
                break
        else:
            return data
    values = getattr(data, "values", None) if hasattr(data, "columns") else None
    if values is not None:  # pandas DataFrame
        # Read once: a DataFrame builds the array anew each time (tens
        # of microseconds for mixed column types).
        data = values.tolist()
    elif hasattr(data, "tolist"):
        data = data.tolist()
    if isinstance(data, dict):
        rows = [list(data.values())]
    elif isinstance(data, (list, tuple)):
        if data and all(isinstance(x, (list, tuple)) or hasattr(x, "tolist") for x in data):
            rows = [list(x.tolist() if hasattr(x, "tolist") else x) for x in data]
        else:
            rows = [list(data)]
    else:
        rows = [[data]]
    return rows


class _Correlation(dict):
    """The correlation context collect() returns: the values of the
    correlation columns of the rows it collected."""

    @property
    def correlation_id(self):
        return self[_ID_COLUMN]

    @property
    def timestamp(self):
        return self[_TS_COLUMN]


class ModelDataCollector(object):
    """Collects model data of a deployed service to the workspace's storage,
    under modeldata/{subscription_id}/{resource_group}/{workspace_name}/
    {webservice_name}/{model_name}/{model_version}/{designation}/{yyyy}/{mm}/{dd}/,
    as CSV files. workspace, webservice_name and model_version are filled in
    by the service when left at their defaults."""

    def __init__(self, model_name, designation="default", feature_names=None,
                 workspace="default/default/default", webservice_name="default",
                 model_version="default", collection_name="default"):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError("ModelDataCollector: model_name must be a non-empty string, got %r" % (model_name,))
        for name, v in (("designation", designation), ("workspace", workspace),
                        ("webservice_name", webservice_name), ("model_version", model_version),
                        ("collection_name", collection_name)):
            if not isinstance(v, str) or not v:
                raise ValueError("ModelDataCollector: %s must be a non-empty string, got %r" % (name, v))
        if len(workspace.split("/")) != 3:
            raise ValueError("ModelDataCollector: workspace must be {subscription_id}/{resource_group}/"
                             "{workspace_name}, got %r" % (workspace,))
        if feature_names is not None:
            feature_names = [str(f) for f in feature_names]
        self.model_name = model_name
        self.designation = designation
        self.feature_names = feature_names
        self.workspace = workspace
        self.webservice_name = webservice_name
        self.model_version = str(model_version)
        self.collection_name = collection_name
        self._enabled = _enabled() and _fd() >= 0
        self._fdn = _fd()
        # The metadata rides with every record: compact, the fields left
        # at their defaults left out (the server fills them in), and the
        # feature names without the two correlation columns the header
        # starts with.
        meta = {"model": model_name, "designation": designation}
        for key, v, default in (("version", self.model_version, "default"),
                                ("collection", collection_name, "default"),
                                ("workspace", workspace, "default/default/default"),
                                ("service", webservice_name, "default")):
            if v != default:
                meta[key] = v
        if feature_names is not None:
            meta["features"] = feature_names
        meta = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        self._meta = _U32.pack(len(meta)) + meta
        self._meta_len = len(self._meta)

    def collect(self, input_data, user_correlation_id=""):
        """Collect input_data (one or more rows) and return the correlation
        context of the rows: their correlation id and timestamp. The
        correlation id is user_correlation_id; without one, the id of the
        scoring request being served (its x-ms-request-id, so the inputs and
        predictions of one request share it and match its telemetry); outside
        a request, a new UUID."""
        ts = _timestamp()
        if user_correlation_id:
            cid = user_correlation_id if type(user_correlation_id) is str else str(user_correlation_id)
        else:
            cid = _req.id if _req is not None and _req.id else str(uuid.uuid4())
        ctx = _Correlation()
        ctx[_TS_COLUMN] = ts
        ctx[_ID_COLUMN] = cid
        if not self._enabled:
            return ctx
        try:
            rows = input_data
            t = type(rows)
            fast = False
            if t is list:
                # The common case, a list of rows of plain values, as it
                # is (marshalled at once: later changes to the rows are
                # not collected).
                if rows:
                    plain = _plain
                    for row in rows:
                        if type(row) is not list or not plain(map(type, row)):
                            break
                    else:
                        fast = True
            else:
                if t is (_DataFrame or _find_types()[1]):
                    # Its values, read once (see _rows), go as the array.
                    rows = input_data = rows.values
                    t = type(rows)
                if t is (_ndarray or _find_types()[0]) and rows.size and rows.dtype.kind in "biufU":
                    # A numpy array of numbers or strings, as v1's guide
                    # collects model.predict's input and output: as a
                    # list its cells are plain values, the rows of a
                    # matrix or the one row of a vector (as _rows makes
                    # them).
                    nd = rows.ndim
                    if nd == 2:
                        rows, fast = rows.tolist(), True
                    elif nd == 1:
                        rows, fast = [rows.tolist()], True
            if fast:
                req = _req
                pending = req.pending if req is not None else None
                if pending is not None and not _broken:
                    # _version(rows), inline.
                    body = _marshal((ts, cid, rows), 2 if len(rows) * len(rows[0]) <= 16 else 4)
                    size = self._meta_len + len(body)
                    if size <= MAX_RECORD_BYTES and req.pending_size + size + 5 < _PENDING_MAX:
                        # In a request: the record leaves with the
                        # reply, in the same write (the host sends it).
                        pending += (_HDR.pack(size, _KIND_DATA), self._meta, body)
                        req.pending_size += size + 5
                        return ctx
            self._send(input_data, ts, cid)
        except _NotSerializable as ex:
            _log("cannot collect data for model %s (designation %s): %s; the record was not collected"
                 % (self.model_name, self.designation, ex))
        except Exception as ex:
            _log("cannot collect data for model %s (designation %s): %s: %s; the record was not collected"
                 % (self.model_name, self.designation, type(ex).__name__, ex))
        return ctx

    def add_correlations(self, input_data, correlations):
        """Return the rows of input_data with the correlation columns of
        correlations (a context returned by collect) in front, and, when
        feature_names was given, a header row first."""
        rows = _rows(input_data)
        ts, cid = correlations.get(_TS_COLUMN, ""), correlations.get(_ID_COLUMN, "")
        out = [[ts, cid] + r for r in rows]
        if self.feature_names is not None:
            out.insert(0, [_TS_COLUMN, _ID_COLUMN] + list(self.feature_names))
        return out

    def _send(self, input_data, ts, cid):
        plain = _PLAIN.issuperset
        rows = input_data
        if type(rows) is list and rows:
            # The common case, a list of rows of plain values, as it is.
            for row in rows:
                if type(row) is not list or not plain(map(type, row)):
                    rows = None
                    break
        else:
            rows = None
        if rows is None:
            rows = _rows(input_data)
            rows = [r if plain(map(type, r)) else [_cell(v, i, c) for c, v in enumerate(r)]
                    for i, r in enumerate(rows)]
        # The values go as marshal data (one C call); the server writes
        # them as CSV rows, off the request path.
        body = _marshal((ts, cid, rows), _version(rows))
        size = len(self._meta) + len(body)
        if size > MAX_RECORD_BYTES:
            _log("a record of %d bytes for model %s (designation %s) exceeds the limit of %d bytes; "
                 "it was not collected" % (size, self.model_name, self.designation, MAX_RECORD_BYTES))
            return
        frame = _HDR.pack(size, _KIND_DATA) + self._meta + body
        if _broken:
            return
        pending = getattr(_req, "pending", None)
        if pending is not None:
            # In a request: the record leaves with the reply, in the same
            # write (the host sends it), unless a megabyte waits already.
            pending.append(frame)
            _req.pending_size += len(frame)
            if _req.pending_size < _PENDING_MAX:
                return
            frame = b"".join(pending)
            del pending[:]
            _req.pending_size = 0
        with _lock:
            if _broken:
                return
            view = memoryview(frame)
            try:
                while view:
                    n = os.write(self._fdn, view)
                    view = view[n:]
            except OSError as ex:
                _channel_broken(ex)


def _channel_broken(ex):
    """The side channel failed (the host calls it too, for the records it
    flushes): this worker collects no more data."""
    if not _broken:
        _broken.append(True)
        _log("the data collection channel to the server is closed (%s); "
             "this worker collects no more data" % ex)
