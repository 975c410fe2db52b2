"""aksml: the WSGI environ of a request passed to a worker as metadata and body.

The AMLRequest shim (azureml.contrib.services.aml_request) builds its Flask or
Werkzeug request from it, and so does the worker host (pyhost/host.py) when a
real, Flask-based azureml package is installed in place of the shim. Like the
other shims it is served by the host's import hook, which knows it under this
name whichever azureml package is in use.
"""

import io
import sys


def environ(meta, body):
    """Return the WSGI environ of a request.

    meta is the request's metadata from the server: method, path, query,
    remote and headers (a list of [name, value] pairs; repeated names are
    joined with commas). The Host header gives HTTP_HOST and SERVER_NAME.
    """
    env = {
        "REQUEST_METHOD": meta.get("method", "POST"),
        "SCRIPT_NAME": "",
        "PATH_INFO": meta.get("path", "/score"),
        "QUERY_STRING": meta.get("query", ""),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": meta.get("remote", ""),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for k, v in meta.get("headers", []):
        key = k.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            env["CONTENT_TYPE"] = v
        elif key == "CONTENT_LENGTH":
            continue
        elif key == "HOST":
            env["HTTP_HOST"] = v
            env["SERVER_NAME"] = v.split(":")[0]
        else:
            hk = "HTTP_" + key
            env[hk] = env[hk] + "," + v if hk in env else v
    return env
