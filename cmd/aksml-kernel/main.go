// Command aksml-kernel is a Jupyter kernel for Go with aksml built in.
//
// It speaks the Jupyter messaging protocol 5.3 over ZeroMQ (shell, iopub,
// control, stdin and heartbeat channels, messages signed with HMAC-SHA256 as
// the connection file says) and interprets each cell with the yaegi Go
// interpreter. aksml's packages and a part of the standard library are
// compiled into the kernel, so cells call the real library: a simulator, a
// workspace and deployed services created in one cell live on in the next.
//
//	aksml-kernel install [--user | --prefix DIR] [--name NAME]
//	aksml-kernel CONNECTION_FILE
//
// install writes the kernelspec (kernel.json) where `jupyter kernelspec`
// looks: the system directory by default (/usr/local/share/jupyter/kernels),
// the user's with --user ($JUPYTER_DATA_DIR or ~/.local/share/jupyter), or
// DIR/share/jupyter/kernels with --prefix. Jupyter then starts the kernel
// with a connection file.
//
// Cells are Go statements and declarations, mixed freely; the value of a
// last expression is shown, values with a MIMEBundle method (such as
// notebook.Data) as rich output, and notebook.Show displays tables and
// charts. A panic, a compile error or an interpreter failure is the cell's
// error; the kernel keeps its state. See docs/notebooks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "aksml-kernel:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  aksml-kernel install [--user | --prefix DIR] [--name NAME]   write the kernelspec
  aksml-kernel CONNECTION_FILE                                 run the kernel (Jupyter does this)`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "install":
		return install(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	path := args[0]
	if len(args) == 2 && (args[0] == "--connection-file" || args[0] == "-f") {
		path = args[1]
	} else if len(args) != 1 {
		return errors.New(usage)
	}
	conn, err := readConnection(path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// Jupyter sends SIGINT to the process group on some interrupts even with
	// interrupt_mode "message"; the kernel must not die of it.
	signal.Ignore(syscall.SIGINT)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return serve(ctx, conn, log, nil)
}

// kernelSpec is the kernel.json of the kernelspec.
type kernelSpec struct {
	Argv          []string          `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env,omitempty"`
	Metadata      map[string]any    `json:"metadata"`
}

// DefaultKernelName is the kernelspec's directory name.
const DefaultKernelName = "aksml-go"

func install(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	user := fs.Bool("user", false, "install for the current user ($JUPYTER_DATA_DIR or ~/.local/share/jupyter)")
	prefix := fs.String("prefix", "", "install under `DIR`/share/jupyter/kernels")
	name := fs.String("name", DefaultKernelName, "the kernelspec's `NAME` (its directory)")
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("install: unexpected argument %q", fs.Arg(0))
	}
	if *user && *prefix != "" {
		return errors.New("install: --user and --prefix exclude each other")
	}
	if *name == "" || filepath.Base(*name) != *name || *name == "." || *name == ".." {
		return fmt.Errorf("install: --name %q must be a plain directory name", *name)
	}
	var root string
	switch {
	case *prefix != "":
		root = filepath.Join(*prefix, "share", "jupyter", "kernels")
	case *user:
		data := os.Getenv("JUPYTER_DATA_DIR")
		if data == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			data = filepath.Join(home, ".local", "share", "jupyter")
		}
		root = filepath.Join(data, "kernels")
	default:
		root = filepath.Join("/usr", "local", "share", "jupyter", "kernels")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return err
	}
	dir := filepath.Join(root, *name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	spec := kernelSpec{
		Argv:          []string{exe, "{connection_file}"},
		DisplayName:   "Go (aksml)",
		Language:      "go",
		InterruptMode: "message",
		Metadata:      map[string]any{},
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kernel.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed kernelspec %s in %s\n", *name, dir)
	return nil
}
