package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"xfskit/internal/oracle"
)

// childEnv carries the options of a restore run in a child process that
// kills itself with SIGKILL at the KillAt-th step.
const childEnv = "XFSKIT_RESTORE_TEST_CHILD"

type childSpec struct {
	Sources    []string
	Dest       string
	Cumulative bool
	KillAt     int
}

// TestChild is the child process of the kill tests (it does nothing in a
// normal test run).
func TestChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("only run as the child of a kill test")
	}
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	n := 0
	opts := Options{Sources: c.Sources, Dest: c.Dest, Cumulative: c.Cumulative, hook: func(string) {
		n++
		if n == c.KillAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}}
	if _, err := Restore(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
}

// killAt runs the restore in a child killed at step k; it reports whether
// the child died (false: the run finished before step k).
func killAt(t *testing.T, spec childSpec) bool {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	out, err := cmd.CombinedOutput()
	if err == nil {
		return false
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	t.Fatalf("child: %v\n%s", err, out)
	return false
}

// countSteps runs the restore in-process and counts its steps.
func countSteps(t *testing.T, opts Options) int {
	n := 0
	opts.hook = func(string) { n++ }
	requireOK(t, runRestore(t, opts))
	return n
}

func spread(total, k int) []int {
	var out []int
	seen := map[int]bool{}
	for i := 0; i < k; i++ {
		v := 1 + i*(total-1)/max(k-1, 1)
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func TestResumeAfterKill(t *testing.T) {
	oracle.Require(t, oracle.Root)
	tmp := t.TempDir()
	src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	fullTree(t, src)
	b := &builder{t: t, root: src}
	for i := 0; i < 40; i++ {
		b.write(fmt.Sprintf("a/b/many-%02d", i), pattern(100+i, 1000*i))
	}
	setDirTimes(t, src)
	d := dumpDir(t, src, out, dumpOpts{streams: 2})
	total := countSteps(t, Options{Sources: d.files, Dest: filepath.Join(tmp, "count")})
	for _, k := range spread(total, 7) {
		t.Run(fmt.Sprint("kill-at-", k), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			if !killAt(t, childSpec{Sources: d.files, Dest: dest, KillAt: k}) {
				t.Fatalf("the restore finished before step %d of %d", k, total)
			}
			// Without -R the interrupted restore is not silently redone.
			if _, err := Restore(t.Context(), Options{Sources: d.files, Dest: dest}); err == nil || !strings.Contains(err.Error(), "-R") {
				t.Fatalf("restore over an interrupted one: %v", err)
			}
			res := runRestore(t, Options{Sources: d.files, Dest: dest, Resume: true})
			requireOK(t, res)
			if k > 60 && res.Resumed == 0 {
				t.Errorf("killed at step %d: nothing was found complete", k)
			}
			checkTimes(t, dest, d.meta)
			sameTree(t, src, dest)
			if _, err := Restore(t.Context(), Options{Sources: d.files, Dest: dest, Resume: true}); err == nil {
				t.Error("a second -R found something to resume")
			}
		})
	}
}

func TestCumulativeResumeAfterKill(t *testing.T) {
	oracle.Require(t, oracle.Root)
	c := newChain(t)
	c.step0()
	c.dump("l0", 0, "", 1)
	c.step1()
	c.dump("l1", 1, "l0", 2)
	base := func(dest string) {
		requireOK(t, runRestore(t, Options{Sources: c.sessions["l0"].files, Dest: dest, Cumulative: true}))
	}
	cdest := filepath.Join(t.TempDir(), "count")
	base(cdest)
	total := countSteps(t, Options{Sources: c.sessions["l1"].files, Dest: cdest, Cumulative: true})
	for _, k := range spread(total, total) { // every step
		t.Run(fmt.Sprint("kill-at-", k), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			base(dest)
			if !killAt(t, childSpec{Sources: c.sessions["l1"].files, Dest: dest, Cumulative: true, KillAt: k}) {
				t.Fatalf("the restore finished before step %d of %d", k, total)
			}
			requireOK(t, runRestore(t, Options{Sources: c.sessions["l1"].files, Dest: dest, Cumulative: true, Resume: true}))
			sameTree(t, c.b.root, dest)
			// The chain continues from the resumed session.
			st, err := (&stateDir{}).loadFrom(filepath.Join(dest, stateDirName))
			if err != nil || len(st.Chain) != 2 {
				t.Fatalf("state after resume: %v %+v", err, st)
			}
		})
	}
}
