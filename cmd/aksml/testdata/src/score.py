"""Entry script of the CLI's tests: init() reads the model (a scale factor)
from AZUREML_MODEL_DIR, run() multiplies each input number by it."""
import json
import os

scale = None


def init():
    global scale
    with open(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.json")) as f:
        scale = json.load(f)["scale"]
    print("init: scale", scale)


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"result": [x * scale for x in data], "scale": scale}
