package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"xfskit/internal/clitest"

	"xfskit/internal/oracle"
)

func run(stdin []byte, bin string, args ...string) (string, string, int) {
	return clitest.Opts{Stdin: stdin}.Run(bin, args...)
}

// TestCommandLine runs restore as a user would: usage errors exit 3, a
// good restore exits 0, anything not restored exits 1 with a list, -t
// lists the contents (also as JSON), -f - reads standard input.
func TestCommandLine(t *testing.T) {
	oracle.Require(t, oracle.Root, oracle.Loop, oracle.Tools)
	img := oracle.Corpus(t, oracle.CorpusOptions{})
	// Restores go to XFS, which holds every attribute the corpus has.
	x := oracle.Mount(t, oracle.Mkfs(t, "1g"), false)
	oracle.MustBeMounted(t, x)
	bin := clitest.Build(t, ".", "restore")
	dumpBin := clitest.Build(t, "../dump", "dump")
	dir := t.TempDir()
	s := filepath.Join(dir, "s0")
	if _, e, code := run(nil, dumpBin, "-q", "-f", s, "--inventory", filepath.Join(dir, "inv.db"), img); code != 0 {
		t.Fatalf("dump: exit %d: %s", code, e)
	}
	for _, args := range [][]string{
		{},                        // nothing
		{filepath.Join(dir, "d")}, // no -f
		{"-f", s},                 // no destination
		{"-f", s, "a", "b"},       // two destinations
		{"-t", "-f", s, "d"},      // -t takes no destination
		{"-r", "-s", "x", "-f", s, filepath.Join(dir, "d")},
		{"-t", "-r", "-f", s},
		{"--no-owner", "--owner", "0", "-f", s, filepath.Join(dir, "d")},
		{"--owner", "no-such-user-xfskit", "-f", s, filepath.Join(dir, "d")},
		{"-s", "../etc", "-f", s, filepath.Join(dir, "d")},
		{"--bogus", "-f", s, filepath.Join(dir, "d")},
		{"-f", s, "-f", s, filepath.Join(dir, "d")}, // the same stream twice
		{"-f", "-", "-f", "-", filepath.Join(dir, "d")},
	} {
		if _, e, code := run(nil, bin, args...); code != 3 || e == "" {
			t.Errorf("%q: exit %d (want 3), stderr %q", args, code, e)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !os.IsNotExist(err) {
		t.Errorf("a usage error created the destination: %v", err)
	}

	dest := filepath.Join(x, "dest")
	_, e, code := run(nil, bin, "-f", s, dest)
	if code != 0 || !strings.Contains(e, "files") {
		t.Fatalf("restore: exit %d: %s", code, e)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "forms/files/tiny")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("forms/files/tiny: %v", err)
	}

	out, e, code := run(nil, bin, "-t", "-f", s)
	if code != 0 || !strings.Contains(out, "forms/files/tiny\n") || !strings.Contains(out, "forms/dirs/\n") {
		t.Fatalf("-t: exit %d, stderr %s, out %.300s", code, e, out)
	}
	out, _, code = run(nil, bin, "-t", "--json", "-s", "forms/files", "-f", s)
	var toc struct {
		Entries []struct {
			Path string `json:"path"`
			Type string `json:"type"`
			Size int64  `json:"size"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &toc); err != nil || code != 0 || len(toc.Entries) < 5 {
		t.Fatalf("-t --json: exit %d, %v, %d entries", code, err, len(toc.Entries))
	}
	for _, x := range toc.Entries {
		if !strings.HasPrefix(x.Path, "forms/files") {
			t.Errorf("-t -s forms/files listed %s", x.Path)
		}
	}

	// Standard input.
	data, err := os.ReadFile(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, e, code := run(data, bin, "-q", "-f", "-", filepath.Join(x, "stdin")); code != 0 || e != "" {
		t.Errorf("-f -: exit %d, stderr %q", code, e)
	}

	// A truncated stream: exit 1, the damage and what was lost listed.
	cut := filepath.Join(dir, "cut")
	os.WriteFile(cut, data[:len(data)*2/3], 0o644)
	_, e, code = run(nil, bin, "-f", cut, filepath.Join(dir, "cutdest"))
	if code != 1 || !strings.Contains(e, "damaged stream") || !strings.Contains(e, "NOT everything was restored") || !strings.Contains(e, "not in the streams read") {
		t.Errorf("truncated stream: exit %d, stderr %.2000s", code, e)
	}
	out, _, code = run(nil, bin, "--json", "-f", cut, filepath.Join(dir, "cutdest2"))
	var res struct {
		OK       bool `json:"ok"`
		Problems []struct {
			Path string `json:"path"`
		} `json:"problems"`
		Damage []string `json:"damage"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.OK || len(res.Problems) == 0 || len(res.Damage) == 0 {
		t.Errorf("--json truncated: exit %d, %v, %+v", code, err, res)
	}

	// Nothing to resume; a cumulative restore of a level 0 keeps its state.
	if _, e, code := run(nil, bin, "-R", "-f", s, filepath.Join(dir, "fresh")); code != 1 || !strings.Contains(e, "no interrupted restore") {
		t.Errorf("-R with nothing to resume: exit %d, %s", code, e)
	}
	cdest := filepath.Join(x, "cum")
	if _, e, code := run(nil, bin, "-q", "-r", "-f", s, cdest); code != 0 {
		t.Errorf("-r: exit %d, %s", code, e)
	}
	if _, err := os.Stat(filepath.Join(cdest, ".xfskit-restore", "state.gob")); err != nil {
		t.Errorf("-r kept no state: %v", err)
	}
	if _, e, code := run(nil, bin, "-q", "-r", "-f", s, cdest); code != 1 || !strings.Contains(e, "already applied") {
		t.Errorf("-r twice: exit %d, %s", code, e)
	}
}
