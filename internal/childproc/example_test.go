package childproc_test

import (
	"fmt"
	"os/exec"

	"github.com/aksml/aksml/internal/childproc"
)

// A child that dies with its parent, killed with what it started.
func Example() {
	cmd := exec.Command("sleep", "10")
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	childproc.KillGroup(cmd.Process)
	fmt.Println(cmd.Wait() != nil)
	// Output: true
}
