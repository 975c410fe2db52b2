// Package jsontype names the JSON type of a raw value for error messages
// about configuration files ("expected a string, got an array").
package jsontype
