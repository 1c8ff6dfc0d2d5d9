package build

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"xfskit/internal/oracle"
)

// parseArgs reads a mkfs.xfs-style argument list (options, then the
// target) into Options, for tests.
func parseArgs(t testing.TB, args []string) *Options {
	t.Helper()
	o, err := tryParseArgs(args)
	if err != nil {
		t.Fatalf("options %q: %v", args, err)
	}
	return o
}

func tryParseArgs(args []string) (*Options, error) {
	o := NewOptions()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			o.Target = a
			continue
		}
		switch c := a[1]; c {
		case 'f':
			o.Force = true
		case 'N':
			o.DryRun = true
		case 'q':
			o.Quiet = true
		case 'K':
			o.NoDiscard = true
		case 'L':
			i++
			o.Label = args[i]
		default:
			i++
			if err := o.ParseSubopts(c, args[i]); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

// realMkfs runs mkfs.xfs with args (small filesystems allowed, as fstests
// does) and returns stdout, stderr and the exit status.
func realMkfs(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	oracle.Require(t, oracle.Tools)
	cmd := exec.Command("mkfs.xfs", args...)
	cmd.Env = append(os.Environ(), "TEST_DIR=/nonexistent", "TEST_DEV=/nonexistent", "QA_CHECK_FS=xfs")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("mkfs.xfs: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// sparseFile creates a sparse file of size bytes.
func sparseFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// ourReport plans args against path and returns the -N report.
func ourReport(t testing.TB, args []string, path string) (string, error) {
	t.Helper()
	o, err := tryParseArgs(append(append([]string{}, args...), path))
	if err != nil {
		return "", err
	}
	ti, err := ProbeTarget(o.Target)
	if err != nil {
		return "", err
	}
	g, err := Plan(o, ti)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	g.Report(&b, path)
	return b.String(), nil
}
