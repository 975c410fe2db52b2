// Command gen writes the yaegi symbol tables of package symbols: one file per
// package in Packages, named as `yaegi extract` names them. Run it from the
// symbols directory (go generate does).
package main

import (
	"fmt"
	"os"

	"github.com/aksml/aksml/internal/gointerp/symbols/gen/extract"
)

func main() {
	files, err := extract.All()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for name, content := range files {
		if err := os.WriteFile(name, content, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
