# Entry script of the aksml example linear model. It imports nothing outside
# the Python standard library, so it runs with any python3.
#
# Input:  {"data": [[x1, x2, x3], ...]}
# Output: [y, ...] with y = intercept + sum(coef[i] * x[i])
import json
import os

model = None


def init():
    global model
    # AZUREML_MODEL_DIR is azureml-models/<name>/<version> for one model.
    path = os.path.join(os.getenv("AZUREML_MODEL_DIR", "."), "model.json")
    with open(path) as f:
        model = json.load(f)
    print("loaded linear model with %d features from %s" % (len(model["coef"]), path))


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    coef, intercept = model["coef"], model["intercept"]
    out = []
    for row in rows:
        if len(row) != len(coef):
            raise ValueError("expected %d features, got %d" % (len(coef), len(row)))
        out.append(intercept + sum(c * x for c, x in zip(coef, row)))
    return out
