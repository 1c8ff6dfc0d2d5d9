// Package clitest builds and runs the tools' binaries in tests, the way a
// user runs them: exit status, stdout and stderr.
package clitest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the Go package pkg (e.g. "." from a cmd/<tool> test) into
// a temporary directory as name and returns the binary's path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Opts are what a run gets besides its arguments.
type Opts struct {
	Stdin []byte   // nil: no input
	Env   []string // added to the test's environment
}

// Run runs bin with args and returns its stdout, stderr and exit status
// (-1 if it could not be started or was killed by a signal).
func Run(bin string, args ...string) (stdout, stderr string, code int) {
	return Opts{}.Run(bin, args...)
}

// Run runs bin with args, o's input and environment.
func (o Opts) Run(bin string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	if o.Stdin != nil {
		cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return out.String(), errb.String(), code
}
