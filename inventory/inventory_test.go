package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	fsA = "0b6c7a35-5d0e-4b39-9a0e-0e6b4e3f6a01"
	fsB = "7f3d9e2a-1c44-4e8b-8b1e-5a2f0c9d4b02"
)

func newDB(t *testing.T) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var clock = time.Unix(1_700_000_000, 0)

// at returns a distinct start time for test sessions: day n plus n ns.
func at(n int) time.Time { return clock.Add(time.Duration(n)*24*time.Hour + time.Duration(n)) }

// session begins a session and finishes it with status st.
func session(t *testing.T, d *DB, fs string, level int, subtrees []string, start time.Time, st Status) string {
	t.Helper()
	id := NewSessionID()
	if err := d.BeginSession(SessionInfo{ID: id, FSUUID: fs, Level: level, Subtrees: subtrees, Start: start}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddStream(Stream{SessionID: id, Index: 0, Count: 1, Dest: "/backup/" + id}); err != nil {
		t.Fatal(err)
	}
	switch st {
	case StatusComplete:
		if err := d.CompleteSession(id, Counts{Files: 1}); err != nil {
			t.Fatal(err)
		}
	case StatusInterrupted:
		if err := d.MarkInterrupted(id, Counts{}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func pragma(t *testing.T, d *DB, name string) string {
	t.Helper()
	var v string
	if err := d.db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenCreatesDirsAndSettings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "inv.db")
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	for name, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1",
		"user_version": "2", "busy_timeout": "15000",
	} {
		if got := pragma(t, d, name); got != want {
			t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
		}
	}
	if SchemaVersion != 2 || len(migrations) != SchemaVersion {
		t.Errorf("SchemaVersion = %d, %d migrations; keep them equal and update this test", SchemaVersion, len(migrations))
	}
	// Reopening an up-to-date database changes nothing.
	d2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	d2.Close()
}

func TestDefaultPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	home := func() (string, error) { return "/home/u", nil }
	nohome := func() (string, error) { return "", errors.New("none") }
	cases := []struct {
		euid int
		env  map[string]string
		home func() (string, error)
		want string
	}{
		{0, map[string]string{"XDG_DATA_HOME": "/x"}, home, "/var/lib/xfskit/inventory.db"},
		{1000, map[string]string{"XDG_DATA_HOME": "/x/data"}, home, "/x/data/xfskit/inventory.db"},
		{1000, map[string]string{"XDG_DATA_HOME": "rel"}, home, "/home/u/.local/share/xfskit/inventory.db"},
		{1000, nil, home, "/home/u/.local/share/xfskit/inventory.db"},
		{1000, nil, nohome, "/var/lib/xfskit/inventory.db"},
	}
	for i, c := range cases {
		if got := defaultPath(c.euid, env(c.env), c.home); got != c.want {
			t.Errorf("case %d: %q, want %q", i, got, c.want)
		}
	}
	if DefaultPath() == "" {
		t.Error("DefaultPath empty")
	}
}

func TestRoundTrip(t *testing.T) {
	d := newDB(t)
	if err := d.RecordFilesystem(Filesystem{UUID: strings.ToUpper(fsA), Label: "data", Source: "/dev/sdb1"}); err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_123, 987_654_321)
	id := NewSessionID()
	base := NewSessionID()
	info := SessionInfo{
		ID: strings.ToUpper(id), FSUUID: fsA, Level: 3, BaseID: base,
		Subtrees: []string{"/srv/", "home/u", "srv", "./home/u/."},
		Label:    "weekly", Start: start, Compression: "zstd",
	}
	if err := d.BeginSession(info); err != nil {
		t.Fatal(err)
	}
	if err := d.BeginSession(info); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second BeginSession: %v", err)
	}
	for i, dest := range []string{"/b/s0", "/b/s1"} {
		if err := d.AddStream(Stream{SessionID: id, Index: i, Count: 2, Dest: dest, MediaLabel: "m" + dest}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddStream(Stream{SessionID: id, Index: 2, Count: 2}); err == nil {
		t.Error("stream index 2 of 2 accepted")
	}
	if err := d.AddStream(Stream{SessionID: id, Index: 1, Count: 2}); err == nil {
		t.Error("duplicate stream accepted")
	}
	if err := d.AddStream(Stream{SessionID: NewSessionID(), Index: 0, Count: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("stream of unknown session: %v", err)
	}
	mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: 0, Seq: 0, Path: "/b/s0.0", Bytes: 10}))
	mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: 0, Seq: 1, Path: "/b/s0.1", Bytes: 1}))
	mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: 0, Seq: 1, Path: "/b/s0.1", Bytes: 20})) // upsert
	mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: 1, Seq: 0, Path: "/b/s1.0", Bytes: 30}))
	if err := d.AddMediaFile(MediaFile{SessionID: id, Stream: 5, Seq: 0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("media file of unknown stream: %v", err)
	}
	mustNil(t, d.UpdateStream(id, 1, 30, StatusInterrupted))
	mustNil(t, d.Checkpoint(Checkpoint{SessionID: id, Stream: 0, LastIno: 99, Offset: 4096}))
	mustNil(t, d.CompleteSession(id, Counts{Files: 7, Dirs: 3, Bytes: 60}))

	s, err := d.Session(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != id || s.FSUUID != fsA || s.FSLabel != "data" || s.FSSource != "/dev/sdb1" || s.Level != 3 ||
		s.BaseID != base || s.Label != "weekly" || s.Compression != "zstd" || s.Status != StatusComplete {
		t.Errorf("session fields: %+v", s)
	}
	if want := []string{"home/u", "srv"}; !reflect.DeepEqual(s.Subtrees, want) {
		t.Errorf("subtrees %q, want %q", s.Subtrees, want)
	}
	if !s.Start.Equal(start) || s.Start.UnixNano() != start.UnixNano() {
		t.Errorf("start %v, want %v (ns precision)", s.Start, start)
	}
	if s.End.IsZero() || s.End.Before(s.Start) {
		t.Errorf("end %v", s.End)
	}
	if s.Counts != (Counts{Files: 7, Dirs: 3, Bytes: 60}) {
		t.Errorf("counts %+v", s.Counts)
	}
	if len(s.Streams) != 2 {
		t.Fatalf("%d streams", len(s.Streams))
	}
	s0, s1 := s.Streams[0], s.Streams[1]
	if s0.Dest != "/b/s0" || s0.MediaLabel != "m/b/s0" || s0.Status != StatusComplete || s0.Count != 2 {
		t.Errorf("stream 0: %+v", s0)
	}
	if s1.Status != StatusInterrupted || s1.Bytes != 30 {
		t.Errorf("stream 1 (explicitly interrupted, must stay so): %+v", s1)
	}
	if len(s0.Media) != 2 || s0.Media[1].Bytes != 20 || s0.Media[1].Path != "/b/s0.1" || len(s1.Media) != 1 {
		t.Errorf("media: %+v / %+v", s0.Media, s1.Media)
	}
	if s0.Checkpoint == nil || s0.Checkpoint.LastIno != 99 || s1.Checkpoint != nil {
		t.Errorf("checkpoints: %+v %+v", s0.Checkpoint, s1.Checkpoint)
	}

	// Filters.
	other := session(t, d, fsB, 0, nil, start.Add(time.Hour), StatusInterrupted)
	check := func(f Filter, want ...string) {
		t.Helper()
		ss, err := d.Sessions(f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, s.ID)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Sessions(%+v) = %v, want %v", f, got, want)
		}
	}
	check(Filter{}, id, other)
	check(Filter{FSUUID: fsA}, id)
	check(Filter{Level: AtLevel(0)}, other)
	check(Filter{Level: AtLevel(3), FSUUID: fsB})
	check(Filter{Status: StatusInterrupted}, other)
	check(Filter{Since: start.Add(1)}, other)
	check(Filter{Since: start}, id, other)
	check(Filter{Until: start.Add(1)}, id)
	check(Filter{Until: start})

	if _, err := d.Session(NewSessionID()); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), d.Path()) {
		t.Errorf("unknown session: %v", err)
	}
	if err := d.BeginSession(SessionInfo{ID: "nope", FSUUID: fsA}); err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Errorf("bad id: %v", err)
	}
	if err := d.BeginSession(SessionInfo{ID: NewSessionID(), FSUUID: fsA, Level: 10}); err == nil {
		t.Error("level 10 accepted")
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCanonicalSubtrees(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"/"}, []string{}},
		{[]string{"a", "/"}, []string{}},
		{[]string{"b/", "/a//x", "a/x", "../c"}, []string{"a/x", "b", "c"}},
	} {
		if got := CanonicalSubtrees(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBaseFor(t *testing.T) {
	d := newDB(t)
	want := func(level int, subtrees []string, id string) {
		t.Helper()
		b, err := d.BaseFor(fsA, level, subtrees)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if b != nil {
			got = b.ID
			if b.Status != StatusComplete {
				t.Errorf("base %s is %s", b.ID, b.Status)
			}
		}
		if got != id {
			t.Errorf("BaseFor(level %d, %q) = %q, want %q", level, subtrees, got, id)
		}
	}
	want(1, nil, "") // empty inventory

	l0 := session(t, d, fsA, 0, nil, at(1), StatusComplete)
	l1 := session(t, d, fsA, 1, nil, at(2), StatusComplete)
	session(t, d, fsA, 2, nil, at(3), StatusComplete) // l2
	l1b := session(t, d, fsA, 1, nil, at(4), StatusComplete)

	want(0, nil, "")
	want(1, nil, l0)
	want(2, nil, l1b) // the later level 1, not the earlier one
	want(3, nil, l1b) // l1b is more recent than l2
	want(9, nil, l1b)
	_ = l1
	l2b := session(t, d, fsA, 2, nil, at(5), StatusComplete)
	want(3, nil, l2b)
	want(2, nil, l1b)

	// Not complete, other filesystem, other subtrees: all ignored.
	session(t, d, fsA, 0, nil, at(6), StatusInterrupted)
	session(t, d, fsA, 0, nil, at(7), StatusInProgress)
	session(t, d, fsB, 0, nil, at(8), StatusComplete)
	sub := session(t, d, fsA, 0, []string{"home"}, at(9), StatusComplete)
	want(1, nil, l0)
	want(3, nil, l2b)
	want(1, []string{"/home/"}, sub)
	want(1, []string{"home", "srv"}, "")
	want(1, []string{"/"}, l0) // "/" is the whole filesystem

	// Names are bytes: selections that are not UTF-8 stay apart (JSON
	// alone would turn both into U+FFFD) and read back exactly.
	fe := session(t, d, fsA, 0, []string{"\xfe"}, at(11), StatusComplete)
	ff := session(t, d, fsA, 0, []string{"\xff/x", "ok"}, at(12), StatusComplete)
	want(1, []string{"\xfe"}, fe)
	want(1, []string{"ok", "\xff/x"}, ff)
	want(1, []string{"\ufffd"}, "")
	if s, err := d.Session(ff); err != nil || !reflect.DeepEqual(s.Subtrees, []string{"ok", "\xff/x"}) {
		t.Errorf("non-UTF-8 selection read back as %q, %v", s.Subtrees, err)
	}

	// Equal start times: the one recorded later wins.
	tie := session(t, d, fsA, 0, nil, at(10), StatusComplete)
	tie2 := session(t, d, fsA, 0, nil, at(10), StatusComplete)
	_ = tie
	want(1, nil, tie2)

	if _, err := d.BaseFor(fsA, 10, nil); err == nil {
		t.Error("level 10 accepted")
	}
	if _, err := d.BaseFor("x", 1, nil); err == nil {
		t.Error("bad fs UUID accepted")
	}
}

func TestChain(t *testing.T) {
	d := newDB(t)
	ids := make([]string, 3)
	for lvl := range ids {
		ids[lvl] = NewSessionID()
		base := ""
		if lvl > 0 {
			base = ids[lvl-1]
		}
		mustNil(t, d.BeginSession(SessionInfo{ID: ids[lvl], FSUUID: fsA, Level: lvl, BaseID: base, Start: at(lvl)}))
	}
	c, err := d.Chain(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 3 || c[0].ID != ids[0] || c[1].ID != ids[1] || c[2].ID != ids[2] {
		t.Errorf("chain %v", c)
	}
	pruned, err := d.Prune(Filter{Level: AtLevel(0), Status: StatusInProgress})
	if err != nil || len(pruned) != 1 || pruned[0] != ids[0] {
		t.Fatalf("prune level 0: %v %v", pruned, err)
	}
	if _, err := d.Chain(ids[2]); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), ids[0]) {
		t.Errorf("chain with pruned base: %v", err)
	}
}

func TestCheckpointUpsert(t *testing.T) {
	d := newDB(t)
	id := NewSessionID()
	mustNil(t, d.BeginSession(SessionInfo{ID: id, FSUUID: fsA}))
	for i := range 2 {
		mustNil(t, d.AddStream(Stream{SessionID: id, Index: i, Count: 2}))
	}
	if c, err := d.LatestCheckpoint(id, 0); c != nil || err != nil {
		t.Fatalf("no checkpoint yet: %v %v", c, err)
	}
	for i := uint64(1); i <= 5; i++ {
		mustNil(t, d.Checkpoint(Checkpoint{SessionID: id, Stream: 0, LastIno: 100 * i, Offset: int64(i) << 20,
			Data: []byte{byte(i), 0, 0xff}, Time: clock.Add(time.Duration(i))}))
	}
	big := uint64(1)<<63 + 5
	mustNil(t, d.Checkpoint(Checkpoint{SessionID: id, Stream: 1, LastIno: big, Offset: 7}))
	c, err := d.LatestCheckpoint(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.LastIno != 500 || c.Offset != 5<<20 || !bytes.Equal(c.Data, []byte{5, 0, 0xff}) ||
		c.Time.UnixNano() != clock.Add(5).UnixNano() || c.Stream != 0 || c.SessionID != id {
		t.Errorf("latest checkpoint %+v", c)
	}
	c1, err := d.LatestCheckpoint(id, 1)
	if err != nil || c1.LastIno != big || c1.Offset != 7 || len(c1.Data) != 0 {
		t.Errorf("stream 1 checkpoint %+v %v", c1, err)
	}
	var rows int
	mustNil(t, d.db.QueryRow(`SELECT count(*) FROM checkpoints`).Scan(&rows))
	if rows != 2 {
		t.Errorf("%d checkpoint rows, want 2 (one per stream)", rows)
	}
	all, err := d.Checkpoints(id)
	if err != nil || len(all) != 2 || all[0].LastIno != 500 || all[1].LastIno != big {
		t.Errorf("Checkpoints: %+v %v", all, err)
	}
	if err := d.Checkpoint(Checkpoint{SessionID: id, Stream: 2, LastIno: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("checkpoint of missing stream: %v", err)
	}
}

func TestStateTransitions(t *testing.T) {
	d := newDB(t)
	if s, err := d.LatestInterrupted(fsA); s != nil || err != nil {
		t.Fatalf("LatestInterrupted on empty: %v %v", s, err)
	}
	a := session(t, d, fsA, 0, nil, at(1), StatusInterrupted)
	b := session(t, d, fsA, 1, nil, at(2), StatusInProgress) // killed dump
	session(t, d, fsA, 0, nil, at(3), StatusComplete)
	session(t, d, fsB, 0, nil, at(4), StatusInterrupted)
	s, err := d.LatestInterrupted(fsA)
	if err != nil || s == nil || s.ID != b {
		t.Fatalf("LatestInterrupted = %v, %v; want %s", s, err, b)
	}
	mustNil(t, d.MarkInterrupted(b, Counts{Files: 4}))
	s, _ = d.Session(b)
	if s.Status != StatusInterrupted || s.Streams[0].Status != StatusInterrupted || s.End.IsZero() || s.Counts.Files != 4 {
		t.Errorf("after MarkInterrupted: %+v", s)
	}
	mustNil(t, d.ResumeSession(b))
	s, _ = d.Session(b)
	if s.Status != StatusInProgress || s.Streams[0].Status != StatusInProgress || !s.End.IsZero() {
		t.Errorf("after ResumeSession: %+v", s)
	}
	mustNil(t, d.CompleteSession(b, Counts{Files: 9}))
	if err := d.CompleteSession(b, Counts{}); !errors.Is(err, ErrState) {
		t.Errorf("completing twice: %v", err)
	}
	if err := d.MarkInterrupted(b, Counts{}); !errors.Is(err, ErrState) {
		t.Errorf("interrupting a complete session: %v", err)
	}
	if err := d.CompleteSession(NewSessionID(), Counts{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("completing unknown session: %v", err)
	}
	s, _ = d.LatestInterrupted(fsA)
	if s == nil || s.ID != a {
		t.Errorf("LatestInterrupted after completing b = %v, want %s", s, a)
	}
}

func count(t *testing.T, d *DB, table, id string) int {
	t.Helper()
	var n int
	mustNil(t, d.db.QueryRow(`SELECT count(*) FROM `+table+` WHERE session_id = ?`, id).Scan(&n))
	return n
}

func TestPruneCascades(t *testing.T) {
	d := newDB(t)
	fill := func(id string) {
		mustNil(t, d.AddStream(Stream{SessionID: id, Index: 1, Count: 2}))
		for st := range 2 {
			mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: st, Seq: 0, Path: "x"}))
			mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: st, Seq: 1, Path: "y"}))
			mustNil(t, d.Checkpoint(Checkpoint{SessionID: id, Stream: st, LastIno: 1}))
		}
	}
	old1 := session(t, d, fsA, 0, nil, at(1), StatusComplete)
	old2 := session(t, d, fsB, 1, nil, at(2), StatusInterrupted)
	running := session(t, d, fsA, 1, nil, at(3), StatusInProgress)
	keep := session(t, d, fsA, 1, nil, at(10), StatusComplete)
	for _, id := range []string{old1, old2, running, keep} {
		fill(id)
	}
	if _, err := d.Prune(Filter{}); err == nil {
		t.Error("empty filter accepted")
	}
	cands, err := d.PruneCandidates(Filter{Until: at(5)})
	if err != nil || len(cands) != 2 || cands[0].ID != old1 || cands[1].ID != old2 {
		t.Fatalf("PruneCandidates = %+v, %v; want %s, %s", cands, err, old1, old2)
	}
	pruned, err := d.Prune(Filter{Until: at(5)})
	if err != nil || len(pruned) != 2 || pruned[0] != old1 || pruned[1] != old2 {
		t.Fatalf("Prune = %v, %v; want %s, %s", pruned, err, old1, old2)
	}
	for _, id := range []string{old1, old2} {
		var c int
		mustNil(t, d.db.QueryRow(`SELECT count(*) FROM sessions WHERE id = ?`, id).Scan(&c))
		if c != 0 {
			t.Errorf("session %s still there", id)
		}
		for _, tbl := range []string{"streams", "media_files", "checkpoints"} {
			if c := count(t, d, tbl, id); c != 0 {
				t.Errorf("%s: %d rows of pruned session %s left", tbl, c, id)
			}
		}
	}
	for _, id := range []string{running, keep} {
		if count(t, d, "streams", id) != 2 || count(t, d, "media_files", id) != 4 || count(t, d, "checkpoints", id) != 2 {
			t.Errorf("rows of kept session %s lost", id)
		}
	}
	// In-progress sessions go only when asked for explicitly.
	pruned, err = d.Prune(Filter{Until: at(5), Status: StatusInProgress})
	if err != nil || len(pruned) != 1 || pruned[0] != running || count(t, d, "streams", running) != 0 {
		t.Errorf("prune in-progress: %v %v", pruned, err)
	}
	// Filesystems stay; the kept session is intact.
	if s, err := d.Session(keep); err != nil || len(s.Streams) != 2 {
		t.Errorf("kept session: %v %v", s, err)
	}
	var fk int
	mustNil(t, d.db.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk))
	if fk != 0 {
		t.Errorf("%d foreign key violations", fk)
	}
}

func TestReport(t *testing.T) {
	d := newDB(t)
	mustNil(t, d.RecordFilesystem(Filesystem{UUID: fsA, Label: "data", Source: "/dev/sdb1"}))
	id := NewSessionID()
	start := time.Date(2024, 3, 4, 5, 6, 7, 123456789, time.UTC)
	mustNil(t, d.BeginSession(SessionInfo{ID: id, FSUUID: fsA, Level: 1, Label: "nightly", Start: start, Subtrees: []string{"home"}}))
	mustNil(t, d.AddStream(Stream{SessionID: id, Index: 0, Count: 1, Dest: "/b/d0", MediaLabel: "tape1"}))
	mustNil(t, d.AddMediaFile(MediaFile{SessionID: id, Stream: 0, Seq: 0, Path: "/b/d0", Bytes: 22952}))
	mustNil(t, d.Checkpoint(Checkpoint{SessionID: id, Stream: 0, LastIno: 133, Offset: 4096}))
	other := session(t, d, fsB, 0, nil, start.Add(time.Hour), StatusComplete)
	ss, err := d.Sessions(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mustNil(t, Report(&buf, ss, false))
	out := buf.String()
	for _, want := range []string{
		"file system 0:\n\tfs id:\t\t" + fsA + "\n\tfs label:\t\"data\"\n\tdevice:\t\t/dev/sdb1\n\tsession 0:\n",
		"\t\ttime:\t\t" + start.Local().Format(ReportTimeFormat) + "\n",
		"\t\tsession label:\t\"nightly\"\n\t\tsession id:\t" + id + "\n\t\tlevel:\t\t1\n",
		"\t\tsubtree:\tYES \"home\"\n\t\tstatus:\t\tin-progress\n",
		"\t\tstreams:\t1\n\t\tstream 0:\n\t\t\tpathname:\t/b/d0\n\t\t\tmedia label:\t\"tape1\"\n",
		"\t\t\tresume at:\tino 133 offset 4096\n\t\t\tstatus:\t\tin-progress\n\t\t\tmedia files:\t1\n",
		"\t\t\tmedia file 0:\n\t\t\t\tmfile index:\t0\n\t\t\t\tmfile path:\t/b/d0\n\t\t\t\tmfile size:\t22952\n",
		"file system 1:\n\tfs id:\t\t" + fsB + "\n",
		"\t\tsession id:\t" + other + "\n\t\tlevel:\t\t0\n\t\tsubtree:\tNO\n\t\tstatus:\t\tcomplete\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n--- report:\n%s", want, out)
		}
	}

	buf.Reset()
	mustNil(t, Report(&buf, ss, true))
	var got struct {
		Sessions []Session `json:"sessions"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(got.Sessions) != 2 || got.Sessions[0].ID != id || !got.Sessions[0].Start.Equal(start) ||
		got.Sessions[0].Streams[0].Media[0].Bytes != 22952 || got.Sessions[0].Streams[0].Checkpoint.LastIno != 133 ||
		!got.Sessions[0].End.IsZero() || got.Sessions[1].End.IsZero() {
		t.Errorf("JSON round trip: %+v\n%s", got, buf.String())
	}
	if strings.Contains(buf.String(), `"end"`) && strings.Count(buf.String(), `"end"`) != 1 {
		t.Errorf("in-progress session should have no end time in JSON:\n%s", buf.String())
	}

	buf.Reset()
	mustNil(t, Report(&buf, nil, true))
	if strings.TrimSpace(buf.String()) != "{\n  \"sessions\": []\n}" {
		t.Errorf("empty JSON report %q", buf.String())
	}
}

// TestBeginSessionWithStreams: a session begun with its streams and their
// first checkpoints is recorded whole, and a failure part-way (here a
// duplicate stream) records nothing at all, so a dump killed or failing
// while it begins never leaves a session that cannot be resumed.
func TestBeginSessionWithStreams(t *testing.T) {
	d := newDB(t)
	id := NewSessionID()
	streams := []Stream{
		{Index: 0, Count: 2, Dest: "/b/s0", Checkpoint: &Checkpoint{Data: []byte("state 0")}},
		{Index: 1, Count: 2, Dest: "/b/s1", Checkpoint: &Checkpoint{Data: []byte("state 1")}},
	}
	mustNil(t, d.BeginSession(SessionInfo{ID: id, FSUUID: fsA, Streams: streams}))
	cps, err := d.Checkpoints(id)
	if err != nil || len(cps) != 2 || string(cps[0].Data) != "state 0" || string(cps[1].Data) != "state 1" || cps[1].Stream != 1 {
		t.Fatalf("checkpoints %+v %v", cps, err)
	}
	ss, err := d.Sessions(Filter{})
	if err != nil || len(ss) != 1 || len(ss[0].Streams) != 2 || ss[0].Streams[1].Dest != "/b/s1" || ss[0].Status != StatusInProgress {
		t.Fatalf("sessions %+v %v", ss, err)
	}

	bad := NewSessionID()
	dup := []Stream{streams[0], streams[0]}
	if err := d.BeginSession(SessionInfo{ID: bad, FSUUID: fsA, Streams: dup}); err == nil || !strings.Contains(err.Error(), "already recorded") {
		t.Fatalf("duplicate stream: %v", err)
	}
	for _, table := range []string{"sessions", "streams", "checkpoints"} {
		col := "session_id"
		if table == "sessions" {
			col = "id"
		}
		var n int
		mustNil(t, d.db.QueryRow(`SELECT count(*) FROM `+table+` WHERE `+col+` = ?`, bad).Scan(&n))
		if n != 0 {
			t.Errorf("failed begin left %d rows in %s", n, table)
		}
	}
}
