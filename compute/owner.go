package compute

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Ephemeral is implemented by providers whose clusters live in the process
// that runs them, such as the in-process simulator: the records of their
// targets name that process (Record.Owner), and once it has exited they are
// stale — listed as such, and replaced by a new Create or Attach of the
// same name.
type Ephemeral interface {
	Ephemeral() bool
}

// Owner is the process a cluster lives in.
type Owner struct {
	// PID is its process id and Start its start time (clock ticks after
	// boot, from /proc), which tell a reused pid apart.
	PID   int    `json:"pid"`
	Start uint64 `json:"start,omitempty"`
	// Host is the machine's name.
	Host string `json:"host,omitempty"`
}

// CurrentOwner is this process as an Owner.
func CurrentOwner() *Owner {
	host, _ := os.Hostname()
	return &Owner{PID: os.Getpid(), Start: processStart(os.Getpid()), Host: host}
}

// Alive reports whether the owning process still runs. A process on
// another machine cannot be checked and counts as alive.
func (o *Owner) Alive() bool {
	if o == nil {
		return true
	}
	if host, _ := os.Hostname(); o.Host != "" && host != o.Host {
		return true
	}
	if o.PID <= 0 {
		return false
	}
	if !processExists(o.PID) {
		return false
	}
	if o.Start != 0 {
		if s := processStart(o.PID); s != 0 && s != o.Start {
			return false // the pid was reused
		}
	}
	return true
}

func (o *Owner) String() string {
	if o == nil {
		return "none"
	}
	return fmt.Sprintf("pid %d on %s", o.PID, o.Host)
}

// processStart reads a process's start time from /proc/PID/stat (0 when
// unknown, as on systems without /proc).
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// Fields after the command: state is field 3, starttime field 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	if f[0] == "Z" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func ownerOf(p interface{}) *Owner {
	if e, ok := p.(Ephemeral); ok && e.Ephemeral() {
		return CurrentOwner()
	}
	return nil
}
