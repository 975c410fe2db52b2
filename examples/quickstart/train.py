"""Trains the quickstart's model offline: logistic regression on the iris
data set that scikit-learn ships, exported as plain JSON so that score.py
needs only the Python standard library.

Run with Debian's interpreter: /usr/bin/python3 train.py > model/iris.json
"""
import json

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris()
clf = LogisticRegression(max_iter=1000, random_state=0).fit(iris.data, iris.target)
print(json.dumps({
    "framework": "ScikitLearn",
    "kind": "multinomial logistic regression",
    "dataset": "iris (Fisher 1936), as shipped by scikit-learn",
    "features": list(iris.feature_names),
    "classes": [str(c) for c in iris.target_names],
    "coef": [[round(float(x), 6) for x in row] for row in clf.coef_],
    "intercept": [round(float(x), 6) for x in clf.intercept_],
    "training_accuracy": round(float(clf.score(iris.data, iris.target)), 4),
}, indent=2))
