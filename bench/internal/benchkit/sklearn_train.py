import json
import sys

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

X, y = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.5).fit(X, y)
joblib.dump(model, sys.argv[1])
json.dump({"data": X[:2].tolist(), "expected": model.predict(X[:2]).tolist()}, open(sys.argv[2], "w"))
