package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"xfskit/internal/clitest"

	"xfskit/internal/oracle"
	"xfskit/internal/stream"
)

// TestCommandLine runs the command as a user would: usage errors exit 3,
// a dump with --json reports what the stream holds, -f - writes the
// stream to stdout, -I lists the sessions (also as JSON and filtered).
func TestCommandLine(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	bin := clitest.Build(t, ".", "dump")
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.db")
	for _, args := range [][]string{
		{img},                                   // no -f
		{"-f", filepath.Join(dir, "x")},         // no image
		{"-l", "10", "-f", "x", img},            // bad level
		{"-z", "lz4", "-f", "x", img},           // bad compression
		{"--media-size", "12q", "-f", "x", img}, // bad size
		{"--media-size", "64k", "-f", filepath.Join(dir, "split"), "--inventory", inv, img}, // below one chunk
		{"--bogus", img},
		{"-f", "-", "--media-size", "1m", img},
		{"-f", "-", "--json", img},
		{"-s", "../etc", "-f", filepath.Join(dir, "x"), "--inventory", inv, img},
	} {
		if _, e, code := clitest.Run(bin, args...); code != 3 || e == "" {
			t.Errorf("%v: exit %d (want 3), stderr %q", args, code, e)
		}
	}
	// Refused before any media file was opened or a session recorded
	// (the session count is checked with -I below).
	if left, _ := filepath.Glob(filepath.Join(dir, "split*")); len(left) != 0 {
		t.Fatalf("a refused --media-size left files behind: %v", left)
	}
	s0 := filepath.Join(dir, "s0")
	out, e, code := clitest.Run(bin, "--json", "-L", "lbl", "-M", "med", "-f", s0, "--inventory", inv, img)
	if code != 0 {
		t.Fatalf("dump: exit %d: %s", code, e)
	}
	var res struct {
		SessionID string `json:"session_id"`
		Files     int64  `json:"files"`
		Dirs      int64  `json:"dirs"`
		Bytes     int64  `json:"bytes"`
		Streams   []struct {
			Media []string `json:"media"`
		} `json:"streams"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	st, err := os.Stat(s0)
	if err != nil || st.Size() != res.Bytes || res.Files == 0 || res.Dirs == 0 || len(res.Streams) != 1 || res.Streams[0].Media[0] != s0 || res.Problems == nil {
		t.Fatalf("result %+v, stream file %v", res, st)
	}

	// -f - : the stream goes to stdout, the summary to stderr.
	out, e, code = clitest.Run(bin, "-l", "1", "-f", "-", "--inventory", inv, img)
	if code != 0 || !strings.Contains(e, "level 1") {
		t.Fatalf("dump to stdout: exit %d: %s", code, e)
	}
	r, err := stream.NewReader(strings.NewReader(out), stream.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := r.Header(); !ok || h.Level != 1 {
		t.Fatalf("stdout stream header %+v", h)
	}

	// -I, text and JSON, with filters.
	out, _, code = clitest.Run(bin, "-I", "--inventory", inv)
	if code != 0 || !strings.Contains(out, res.SessionID) || !strings.Contains(out, `"lbl"`) {
		t.Fatalf("-I: exit %d:\n%s", code, out)
	}
	out, _, code = clitest.Run(bin, "-I", "--json", "-l", "1", "--inventory", inv, img)
	var list struct {
		Sessions []struct {
			ID    string
			Level int
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 {
		t.Fatalf("-I --json: exit %d: %v\n%s", code, err, out)
	}
	if len(list.Sessions) != 1 || list.Sessions[0].Level != 1 {
		t.Fatalf("-I -l 1: %+v", list)
	}
	out, _, _ = clitest.Run(bin, "-I", "--json", "--status", "interrupted", "--inventory", inv)
	if !strings.Contains(out, `"sessions": []`) {
		t.Fatalf("-I --status interrupted: %s", out)
	}
	if _, e, code := clitest.Run(bin, "-I", "--status", "bogus", "--inventory", inv); code != 3 {
		t.Fatalf("-I --status bogus: exit %d %s", code, e)
	}
	// --prune: refused without a filter or with -I; --dry-run deletes
	// nothing; then the level-1 session goes and the level-0 one stays.
	for _, args := range [][]string{{"--prune"}, {"--prune", "-I", "-l", "1"}, {"--dry-run", "-I"}} {
		if _, e, code := clitest.Run(bin, append(args, "--inventory", inv)...); code != 3 || e == "" {
			t.Errorf("%v: exit %d (want 3), stderr %q", args, code, e)
		}
	}
	sessions := func() []string {
		out, _, code := clitest.Run(bin, "-I", "--json", "--inventory", inv)
		var l struct{ Sessions []struct{ ID string } }
		if err := json.Unmarshal([]byte(out), &l); err != nil || code != 0 {
			t.Fatalf("-I --json: exit %d: %v\n%s", code, err, out)
		}
		var ids []string
		for _, s := range l.Sessions {
			ids = append(ids, s.ID)
		}
		return ids
	}
	if got := sessions(); len(got) != 2 {
		t.Fatalf("sessions before pruning: %v", got)
	}
	out, _, code = clitest.Run(bin, "--prune", "--dry-run", "-l", "1", "--inventory", inv, img)
	if code != 0 || strings.Count(out, "session id:") != 1 || len(sessions()) != 2 {
		t.Fatalf("--prune --dry-run: exit %d, sessions %v:\n%s", code, sessions(), out)
	}
	out, _, code = clitest.Run(bin, "--prune", "--json", "-l", "1", "--inventory", inv)
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Sessions) != 1 || list.Sessions[0].Level != 1 {
		t.Fatalf("--prune -l 1: exit %d: %v\n%s", code, err, out)
	}
	if got := sessions(); len(got) != 1 || got[0] != res.SessionID {
		t.Fatalf("after pruning level 1: %v, want only %s", got, res.SessionID)
	}
	// Nothing to resume: a clear error, exit 1.
	if _, e, code := clitest.Run(bin, "-R", "--inventory", inv, img); code != 1 || !strings.Contains(e, "no interrupted") {
		t.Fatalf("-R with nothing to resume: exit %d: %s", code, e)
	}
}

// TestBrokenPipe: a reader that goes away (dump -f - IMG | head) fails
// the dump like any write error, exit 1, and the session is recorded as
// interrupted instead of staying "in progress" after a SIGPIPE death.
func TestBrokenPipe(t *testing.T) {
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	bin := clitest.Build(t, ".", "dump")
	inv := filepath.Join(t.TempDir(), "inv.db")
	cmd := exec.Command(bin, "-z", "none", "--no-progress", "--inventory", inv, "-f", "-", img)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(out, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("dump into a closed pipe: %v (want exit 1), stderr %q", err, stderr.String())
	}
	o, e, code := clitest.Run(bin, "-I", "--json", "--inventory", inv)
	if code != 0 || !strings.Contains(o, `"status": "interrupted"`) {
		t.Fatalf("-I after the broken pipe: exit %d, %s %s", code, o, e)
	}
}
