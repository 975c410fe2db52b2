// Package scoringtest holds ready-made models for tests, examples and
// quickstarts of the scoring runtime, in the spirit of net/http/httptest:
// a linear model stored as JSON with a score.py that needs only the Python
// standard library (WriteLinearModel, LinearScoreScript, LinearModelJSON),
// and the same model as a Go handler (NewLinearHandler).
//
// The linear model takes {"data": [[x1, x2, x3], ...]} and returns one
// prediction per row: 3 + 0.5·x1 − 1.25·x2 + 2·x3, so [[1, 2, 3]] gives [7].
package scoringtest
