import json


def init():
    pass


def run(raw_data):
    return json.loads(raw_data)
