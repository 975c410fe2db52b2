//go:build !linux

package main

import "errors"

// orchestrateAttack needs Linux: it reads the proxies' CPU and memory from
// /proc.
func orchestrateAttack(string, string, int, []string, []string, func(*child)) error {
	return errors.New("-attack runs on Linux only: it reads the proxies' CPU and memory from /proc")
}
