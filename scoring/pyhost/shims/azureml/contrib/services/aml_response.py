"""aksml compatibility shim for azureml.contrib.services.aml_response.

AMLResponse(message, status_code, response_headers={}, json_str=False) sets
the status and headers of a reply from run(). It is a Flask response when
Flask is installed (as in Azure ML) and a small stand-in otherwise.
json_str=True JSON-encodes message; otherwise message is sent as is.
"""

import json

try:
    from flask import Response as _Base
except ImportError:
    try:
        from werkzeug.wrappers import Response as _Base
    except ImportError:
        _Base = None


class _StdlibHeaders(object):
    def __init__(self):
        self._pairs = []

    def add(self, key, value):
        self._pairs.append((str(key), str(value)))

    add_header = add

    def remove(self, key):
        lk = key.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k.lower() != lk]

    def get(self, key, default=None):
        lk = key.lower()
        for k, v in self._pairs:
            if k.lower() == lk:
                return v
        return default

    def __setitem__(self, key, value):
        self.remove(key)
        self.add(key, value)

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key):
        return self.get(key) is not None

    def items(self):
        return list(self._pairs)

    def __iter__(self):
        return iter(self._pairs)


class _StdlibResponse(object):
    def __init__(self, response=None, status=200, headers=None, mimetype=None, content_type=None):
        if response is None:
            response = b""
        if isinstance(response, (str, bytes, bytearray)):
            self._data = response.encode("utf-8") if isinstance(response, str) else bytes(response)
            self.response = None
        else:
            # An iterable body (a generator) is streamed, as by Werkzeug.
            self._data = None
            self.response = response
        self.status_code = int(status)
        self.headers = _StdlibHeaders()
        if content_type is None:
            content_type = (mimetype or "text/html") + ("; charset=utf-8" if (mimetype or "text/html").startswith("text/") else "")
        self.headers["Content-Type"] = content_type
        for k, v in (headers or {}).items():
            self.headers.add(k, v)

    @property
    def mimetype(self):
        return self.headers.get("Content-Type", "").split(";")[0]

    @property
    def is_streamed(self):
        return self._data is None

    def iter_encoded(self):
        for chunk in self.response:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)

    def close(self):
        close = getattr(self.response, "close", None)
        if close is not None:
            close()

    def get_data(self, as_text=False):
        if self._data is None:
            self._data = b"".join(self.iter_encoded())
            self.response = None
        return self._data.decode("utf-8") if as_text else self._data

    def set_data(self, value):
        self.response = None
        self._data = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    data = property(get_data, set_data)


_Resp = _Base if _Base is not None else _StdlibResponse


class AMLResponse(_Resp):
    """A run() reply with its own status code and headers."""

    def __init__(self, message, status_code, response_headers=None, json_str=False, run_function_failed=False):
        response_headers = response_headers or {}
        if message is not None:
            if json_str:
                super(AMLResponse, self).__init__(json.dumps(message), status=status_code, mimetype="application/json")
            else:
                super(AMLResponse, self).__init__(message, status=status_code)
                if "Content-Type" in response_headers:
                    self.headers.remove("Content-Type")
        else:
            super(AMLResponse, self).__init__(json.dumps({}), status=status_code, mimetype="application/json")
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        for header, value in response_headers.items():
            for v in str(value).split(","):
                self.headers.add(header, v.strip())
