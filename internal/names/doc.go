// Package names checks names against Azure ML's naming rules (length,
// letters, digits and dashes, first and last character), listing every
// rule a name breaks in one error. Compute target and service names are
// two such rules.
package names
