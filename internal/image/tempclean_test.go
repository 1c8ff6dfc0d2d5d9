package image

import (
	"bufio"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const tempChildEnv = "XFSKIT_IMAGE_TEST_TEMP_CHILD"

// TestTempChild is the child of TestSignalRemovesReplacement (it does
// nothing in a normal test run): it starts a replacement image, says so,
// and waits to be signalled.
func TestTempChild(t *testing.T) {
	path := os.Getenv(tempChildEnv)
	if path == "" {
		t.Skip("only run as the child of TestSignalRemovesReplacement")
	}
	n, err := CreateReplacement(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.WriteAt([]byte("half"), 0); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(20 * time.Second)
	n.Abort()
}

// TestSignalRemovesReplacement: Ctrl-C (SIGINT), SIGTERM or SIGHUP while
// an image is written under its temporary name removes that file, and the
// process still dies of the signal. Before, Go's default handling ended
// the process at once and left ".IMG.mkfs-NNN" (the size of the image)
// behind. A signal the process was started with ignored (nohup) stays
// ignored.
func TestSignalRemovesReplacement(t *testing.T) {
	for _, c := range []struct {
		name    string
		sig     syscall.Signal
		ignored bool
	}{
		{"SIGINT", syscall.SIGINT, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGHUP", syscall.SIGHUP, false},
		{"SIGHUP-ignored", syscall.SIGHUP, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if signal.Ignored(c.sig) {
				t.Skipf("%v is ignored in this test process, and so in its child", c.sig)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "img")
			args := []string{os.Args[0], "-test.run=^TestTempChild$", "-test.count=1"}
			if c.ignored {
				// The shell's trap makes SIGHUP ignored across exec, as nohup does.
				args = append([]string{"sh", "-c", `trap "" HUP; exec "$@"`, "sh"}, args...)
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), tempChildEnv+"="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || line != "ready\n" {
				t.Fatalf("child: %q, %v", line, err)
			}
			leftovers := func() []string {
				m, _ := filepath.Glob(filepath.Join(dir, ".img.mkfs-*"))
				return m
			}
			if len(leftovers()) != 1 {
				t.Fatalf("temporary files while writing: %v", leftovers())
			}
			cmd.Process.Signal(c.sig)
			if c.ignored {
				time.Sleep(300 * time.Millisecond)
				if len(leftovers()) != 1 {
					t.Errorf("ignored %v removed the image being written: %v", c.sig, leftovers())
				}
				cmd.Process.Signal(syscall.SIGTERM)
			}
			want := c.sig
			if c.ignored {
				want = syscall.SIGTERM
			}
			err = cmd.Wait()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != want {
				t.Errorf("child ended with %v, want death by %v", err, want)
			}
			if m := leftovers(); len(m) != 0 {
				t.Errorf("left behind: %v", m)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("final path exists: %v", err)
			}
		})
	}
}
