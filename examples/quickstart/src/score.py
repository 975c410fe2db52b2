"""Entry script for the quickstart's iris classifier, written the way Azure ML
samples write score.py files: init() loads the model once per replica from the
directory Azure ML puts it in, run() scores a JSON request.

It needs only the Python standard library, so the quickstart runs on any
machine with python3.
"""
import json
import math
import os

model = None


def init():
    global model
    path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "iris.json")
    with open(path) as f:
        model = json.load(f)
    print("loaded", model["kind"], "with classes", model["classes"])


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    out = []
    for row in rows:
        if len(row) != len(model["features"]):
            return {"error": "each row needs %d features: %s" % (len(model["features"]), ", ".join(model["features"]))}
        scores = [b + sum(w * x for w, x in zip(ws, row)) for ws, b in zip(model["coef"], model["intercept"])]
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        total = sum(exp)
        best = max(range(len(scores)), key=lambda i: scores[i])
        out.append({"class": model["classes"][best], "probability": round(exp[best] / total, 4)})
    return out
