"""aksml compatibility shim for azureml.contrib.services.aml_request.

@rawhttp marks run() as wanting the whole HTTP request; the server then calls
run(request) with an AMLRequest. AMLRequest is a Flask request when Flask is
installed (as in Azure ML), a Werkzeug request when only Werkzeug is, and a
small standard-library object with the same common attributes otherwise.
"""

import json

from _aksml_wsgi import environ as _environ

_rawHttpRequested = False


def rawhttp(func):
    """Decorator for run(): pass the raw HTTP request instead of the body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class _Headers(object):
    """Case-insensitive, read-only header view."""

    def __init__(self, pairs):
        self._pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, key, default=None, type=None):
        lk = key.lower()
        for k, v in self._pairs:
            if k.lower() == lk:
                if type is not None:
                    try:
                        return type(v)
                    except ValueError:
                        return default
                return v
        return default

    def getlist(self, key):
        lk = key.lower()
        return [v for k, v in self._pairs if k.lower() == lk]

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key):
        return self.get(key) is not None

    def __iter__(self):
        return iter(self._pairs)

    def __len__(self):
        return len(self._pairs)

    def items(self):
        return list(self._pairs)

    def keys(self):
        return [k for k, _ in self._pairs]

    def to_dict(self):
        return dict(self._pairs)


class _Args(object):
    def __init__(self, query):
        from urllib.parse import parse_qsl
        self._pairs = parse_qsl(query, keep_blank_values=True)

    def get(self, key, default=None, type=None):
        for k, v in self._pairs:
            if k == key:
                if type is not None:
                    try:
                        return type(v)
                    except ValueError:
                        return default
                return v
        return default

    def getlist(self, key):
        return [v for k, v in self._pairs if k == key]

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key):
        return any(k == key for k, _ in self._pairs)

    def __iter__(self):
        seen = []
        for k, _ in self._pairs:
            if k not in seen:
                seen.append(k)
        return iter(seen)

    def keys(self):
        return list(iter(self))

    def items(self):
        return [(k, self.get(k)) for k in self.keys()]

    def to_dict(self, flat=True):
        return {k: (self.get(k) if flat else self.getlist(k)) for k in self.keys()}


class _StdlibRequest(object):
    """The common surface of a Flask request, for scripts without Flask."""

    def __init__(self, meta, body):
        self.method = meta.get("method", "POST")
        self.path = meta.get("path", "/score")
        q = meta.get("query", "")
        self.query_string = q.encode("latin-1", "replace")
        self.full_path = self.path + "?" + q
        self.headers = _Headers(meta.get("headers", []))
        host = self.headers.get("Host", "localhost")
        self.host = host
        self.host_url = "http://" + host + "/"
        self.base_url = "http://" + host + self.path
        self.url = self.base_url + ("?" + q if q else "")
        self.args = _Args(q)
        self.remote_addr = meta.get("remote", "")
        self.data = body
        self.form = {}
        self.files = {}
        self.environ = _environ(meta, body)

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    @property
    def mimetype(self):
        return self.content_type.split(";")[0].strip().lower()

    @property
    def content_length(self):
        return len(self.data)

    @property
    def is_json(self):
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        return self.data.decode("utf-8", "replace") if as_text else self.data

    def get_json(self, force=False, silent=False, cache=True):
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError("Content-Type is not application/json")
        try:
            return json.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()

    def __repr__(self):
        return "<AMLRequest %r [%s]>" % (self.url, self.method)


try:
    from flask import Request as _Base
except ImportError:
    try:
        from werkzeug.wrappers import Request as _Base
    except ImportError:
        _Base = None

if _Base is not None:
    class AMLRequest(_Base):
        """The request passed to a @rawhttp run(): a Flask/Werkzeug request."""

        @classmethod
        def _aksml_from_parts(cls, meta, body):
            return cls(_environ(meta, body))
else:
    class AMLRequest(_StdlibRequest):
        """The request passed to a @rawhttp run() (standard-library stand-in
        for a Flask request)."""

        @classmethod
        def _aksml_from_parts(cls, meta, body):
            return cls(meta, body)
