"""The Python side of bench/capture alone: the aksml worker's request loop
(scoring/pyhost/host.py) run in this process on canned requests to the
benchmark's echo score.py, its pipes replaced by /dev/null, so that only
the worker's own work per request is measured.

    /usr/bin/python3 bench/capture/pyloop.py on 20000     # CPU time per request
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        /usr/bin/python3 bench/capture/pyloop.py on 3000 --once

MODE is on (collection and telemetry), off, dc (collection alone) or tel
(telemetry alone). With --once the loop runs once (for an instruction
count: run it for two request counts and take the difference per
request, so that start-up cancels); else five times, the best printed.
"""

import json
import os
import sys
import tempfile
import time
import uuid

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODE = sys.argv[1] if len(sys.argv) > 1 else "on"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
ONCE = "--once" in sys.argv
if MODE not in ("on", "off", "dc", "tel"):
    sys.exit("mode %r: want on, off, dc or tel" % MODE)

# The benchmark's script (bench/capture/main.go).
SCRIPT = open(os.path.join(ROOT, "bench", "capture", "main.go")).read().split("const echoScript = `")[1].split("`")[0]

shims = {}
base = os.path.join(ROOT, "scoring", "pyhost", "shims")
for d, _, files in os.walk(base):
    for f in files:
        if f.endswith(".py"):
            rel = os.path.relpath(os.path.join(d, f), base)[:-3]
            pkg = os.path.basename(rel) == "__init__"
            if pkg:
                rel = os.path.dirname(rel)
            shims[rel.replace(os.sep, ".")] = {"source": open(os.path.join(d, f)).read(), "package": pkg}
src = tempfile.mkdtemp()
with open(os.path.join(src, "score.py"), "w") as f:
    f.write(SCRIPT)
os.chdir(src)
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 4)  # replies
os.dup2(null, 5)  # side channel
err = sys.stderr
sys.stdout = open(os.dup(null), "w", buffering=1)
sys.stdout.reconfigure(write_through=True)  # as under -u
dc, tel = MODE in ("on", "dc"), MODE in ("on", "tel")
os.environ["AML_MODEL_DC_STORAGE_ENABLED"] = "true" if dc else "false"
if dc:
    os.environ["AKSML_DC_FD"] = "5"
if tel:
    os.environ["AKSML_TELEMETRY_FD"] = "5"
host = open(os.path.join(ROOT, "scoring", "pyhost", "host.py")).read().replace("\n_main(AKSML_CONFIG)", "\n")
g = {"__name__": "aksml_host"}
exec(compile(host, "<aksml-host>", "exec"), g)

body = b'{"data": [[1.5, 2, "x"], [3, 4.25, "y"]]}'
rid = str(uuid.uuid4()).encode()
# As the server sends them: R (the body) when both are off, else U (the
# request's ids, then the body).
msg = (82, body) if MODE == "off" else (85, bytes([len(rid)]) + rid + bytes([0]) + body)
left = [0]


def read():
    left[0] -= 1
    if left[0] < 0:
        raise EOFError
    return msg


g["_read_msg"] = read
serve = g["_serve"]
g["_serve"] = lambda script: None
cfg = json.dumps({"entry_script": "score.py", "source_dir": src, "shims": shims}).encode()
g["_main"](cfg)  # set-up and init() as in a worker
script = g["_Script"](json.loads(cfg))
script.load()
script.init()
best = None
for n in ((200, N) if ONCE else (2000, N, N, N, N, N)):
    left[0] = n
    t = time.thread_time_ns()
    serve(script)
    dt = time.thread_time_ns() - t
    if n == N:
        best = dt if best is None else min(best, dt)
print("%s: %.2f us CPU per request (%d requests)" % (MODE, best / N / 1000, N), file=err)
