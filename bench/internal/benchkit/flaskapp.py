# Baseline for bench/scoring and bench/stack: a small Flask app that hosts a score.py the way
# azureml-inference-server-http does (load the script as "entry_module", call
# init() once per gunicorn worker, pass the body to run() as a str, JSON-encode
# the result, return {"message": ...} with 500 on exceptions), served by
# gunicorn exactly like azmlinfsrv serves its Flask app.
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid

from flask import Flask, Response, request

_script = os.environ["BENCH_ENTRY_SCRIPT"]
sys.path.insert(0, os.path.dirname(_script))
_spec = importlib.util.spec_from_file_location("entry_module", _script)
_user = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_user)
_user.init()

app = Flask(__name__)


@app.route("/", methods=["GET"])
def health():
    return "Healthy"


@app.route("/score", methods=["POST"])
def score():
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    try:
        data = str(request.data, "utf-8")
    except UnicodeDecodeError as ex:
        return Response(json.dumps({"message": "Input cannot be decoded as UTF-8: %s" % ex}), 400,
                        mimetype="application/json")
    start = time.perf_counter()
    try:
        result = _user.run(data)
    except Exception:
        print("Encountered Exception: " + traceback.format_exc(), file=sys.stderr)
        return Response(json.dumps({"message": "An unexpected error occurred in scoring script."}), 500,
                        mimetype="application/json")
    elapsed = (time.perf_counter() - start) * 1000
    resp = Response(json.dumps(result), 200, mimetype="application/json")
    resp.headers["x-ms-run-fn-exec-ms"] = "%.3f" % elapsed
    resp.headers["x-request-id"] = request_id
    return resp
