package ondisk_test

import (
	"bytes"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"xfskit/internal/oracle"
	"xfskit/ondisk"
)

// dxHashNames returns names that xfs_db's command parser passes through
// unchanged (no blanks, quotes or backslashes) of every length 1..255,
// mixing ASCII and high bytes.
func dxHashNames(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var names [][]byte
	for i := 0; i < n; i++ {
		l := 1 + i%255
		b := make([]byte, l)
		for j := range b {
			for {
				c := byte(r.IntN(256))
				if c > ' ' && c != '"' && c != '\'' && c != '\\' && c != 0x7f && c != '#' {
					b[j] = c
					break
				}
			}
		}
		names = append(names, b)
	}
	for _, s := range []string{"a", "ab", "abc", "abcd", "abcde", "lost+found", "SGI_ACL_FILE", "selinux", "ü", "日本語のファイル名"} {
		names = append(names, []byte(s))
	}
	return names
}

// Compares DAHash with xfs_db's `hash` command for several hundred names of
// all lengths, including non-ASCII bytes.
func TestDAHashAgainstXFSDB(t *testing.T) {
	img := oracle.Mkfs(t, "300m")
	names := dxHashNames(600)
	var cmds []string
	for _, n := range names {
		cmds = append(cmds, "hash "+string(n))
	}
	out := oracle.DB(t, img, []string{"-r"}, cmds...)
	lines := strings.Fields(out)
	if len(lines) != len(names) {
		t.Fatalf("xfs_db printed %d hashes for %d names:\n%s", len(lines), len(names), out)
	}
	for i, n := range names {
		want, err := strconv.ParseUint(lines[i], 0, 32)
		if err != nil {
			t.Fatalf("xfs_db output %q: %v", lines[i], err)
		}
		if got := ondisk.DAHash(n); got != uint32(want) {
			t.Errorf("DAHash(%q) = 0x%08x, xfs_db says 0x%08x", n, got, want)
		}
	}
}

// The case-insensitive hash is the plain hash of the folded name; the kernel
// here cannot mount ascii-ci filesystems, so xfs_db hashes the folded names.
func TestDAHashASCIICI(t *testing.T) {
	img := oracle.Mkfs(t, "300m")
	names := [][]byte{[]byte("HeLLo"), []byte("README.TXT"), {0xc0, 0xd6, 0xd7, 0xd8, 0xde, 0xdf, 'Z'}, []byte("already-lower"), []byte("Ünïcode-ÄÖ")}
	var cmds []string
	for _, n := range names {
		f := make([]byte, len(n))
		for i, c := range n {
			f[i] = ondisk.ASCIICIFold(c)
		}
		cmds = append(cmds, "hash "+string(f))
	}
	lines := strings.Fields(oracle.DB(t, img, []string{"-r"}, cmds...))
	if len(lines) != len(names) {
		t.Fatalf("got %d hashes for %d names", len(lines), len(names))
	}
	for i, n := range names {
		want, _ := strconv.ParseUint(lines[i], 0, 32)
		if got := ondisk.DAHashASCIICI(n); got != uint32(want) {
			t.Errorf("DAHashASCIICI(%q) = 0x%08x, want 0x%08x", n, got, want)
		}
	}
	// Folding table: exactly A-Z, 0xc0-0xd6 and 0xd8-0xde move by 0x20.
	for c := 0; c < 256; c++ {
		want := byte(c)
		if c >= 'A' && c <= 'Z' || c >= 0xc0 && c <= 0xd6 || c >= 0xd8 && c <= 0xde {
			want += 0x20
		}
		if got := ondisk.ASCIICIFold(byte(c)); got != want {
			t.Errorf("fold(0x%02x) = 0x%02x, want 0x%02x", c, got, want)
		}
	}
	if !ondisk.EqualASCIICI([]byte("ReadMe"), []byte("rEADmE")) || ondisk.EqualASCIICI([]byte("a"), []byte("b")) || ondisk.EqualASCIICI([]byte("a"), []byte("aa")) {
		t.Error("EqualASCIICI")
	}
}

// The unrolled hash equals the byte-at-a-time definition.
func TestDAHashDefinition(t *testing.T) {
	for _, n := range dxHashNames(300) {
		var h uint32
		for _, c := range n {
			h = uint32(c) ^ bits.RotateLeft32(h, 7)
		}
		if got := ondisk.DAHash(n); got != h {
			t.Fatalf("DAHash(%q) = %08x, byte-wise %08x", n, got, h)
		}
		if l := bytes.ToLower(n); bytes.Equal(l, n) && ondisk.DAHashASCIICI(n) != h && !hasLatin1Upper(n) {
			t.Fatalf("ci hash of lower-case %q differs", n)
		}
	}
	if ondisk.DAHash(nil) != 0 {
		t.Error("empty name must hash to 0")
	}
}

func hasLatin1Upper(b []byte) bool {
	for _, c := range b {
		if c >= 0xc0 && c <= 0xde && c != 0xd7 {
			return true
		}
	}
	return false
}

func ExampleDAHash() {
	fmt.Printf("0x%08x\n", ondisk.DAHash([]byte("abcde")))
	// Output: 0x1c58f263
}
