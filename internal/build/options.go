// Package build formats empty XFS v5 filesystems the way mkfs.xfs 6.1 does:
// the same option syntax, the same defaults and derived geometry, and the
// same on-disk result for the same options and UUID.
package build

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"xfskit/ondisk"
)

// UsageError reports an invalid, conflicting or unsupported option. Front
// ends print their usage text after it, as mkfs.xfs does.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Options is a format request in mkfs.xfs terms. Build it with NewOptions
// (which holds mkfs.xfs 6.1's defaults) and Set, or set fields directly.
// Size-valued options stay strings until Plan because their "b" and "s"
// suffixes depend on the block and sector size finally chosen.
type Options struct {
	Target    string    // image file or block device (or -d name=)
	Force     bool      // -f: overwrite an existing filesystem
	DryRun    bool      // -N: print the geometry only
	Quiet     bool      // -q
	NoDiscard bool      // -K: do not discard (punch) the old contents
	Label     string    // -L
	Proto     string    // -p: directory tree or mkfs.xfs prototype file to copy in
	Now       time.Time // timestamp of the root and realtime inodes; zero = time.Now() (with -p: the source's mtime)

	// Populating (-p): owners mapped to 0:0 (RootOwner) or to
	// OwnerUID:OwnerGID (when both >= 0); timestamps later than Now
	// clamped to it (ClampTimes, for SOURCE_DATE_EPOCH); and the room left
	// when the image is sized to the tree (fraction; -d size= omitted).
	RootOwner          bool
	OwnerUID, OwnerGID int64
	ClampTimes         bool
	SizeMargin         float64

	BlockSize int // -b size (bytes, 0 = default)

	AGCount      int64  // -d agcount
	AGSize       string // -d agsize
	DataFile     bool   // -d file
	DataSize     string // -d size
	DataSunit    int    // -d sunit (512-byte units)
	DataSwidth   int    // -d swidth (512-byte units)
	DataSU       string // -d su (bytes)
	DataSW       int    // -d sw (multiple of su)
	NoAlign      bool   // -d noalign
	RTInherit    bool   // -d rtinherit
	ProjInherit  int64  // -d projinherit (project id; -1 = unset)
	ExtSzInherit int64  // -d extszinherit (blocks)
	CowExtSize   int64  // -d cowextsize (blocks)
	DAXInherit   bool   // -d daxinherit

	InodeAlign     bool // -i align
	IMaxPct        int  // -i maxpct (0 = default by size)
	InodesPerBlock int  // -i perblock
	InodeSize      int  // -i size
	AttrVersion    int  // -i attr
	ProjID32       bool // -i projid32bit
	Sparse         bool // -i sparse
	Nrext64        bool // -i nrext64

	LogAGNum     int64  // -l agnum
	LogInternal  bool   // -l internal
	LogSize      string // -l size
	LogVersion   int    // -l version
	LogSunit     int    // -l sunit (512-byte units)
	LogSU        string // -l su (bytes)
	LogSectSize  int    // -l sectsize
	LazyCount    bool   // -l lazy-count
	LogDevice    string // -l logdev / name (external logs are refused)
	RTDevice     string // -r rtdev / name (realtime devices are refused)
	RTExtSize    string // -r extsize (recorded in the superblock even without a realtime device)
	RTSize       string // -r size
	DirBlockSize string // -n size
	DirVersion   int    // -n version
	ASCIICI      bool   // -n version=ci
	FType        bool   // -n ftype

	CRC        bool        // -m crc
	Finobt     bool        // -m finobt
	Rmapbt     bool        // -m rmapbt
	Reflink    bool        // -m reflink
	InobtCount bool        // -m inobtcount
	Bigtime    bool        // -m bigtime
	UUID       ondisk.UUID // -m uuid (zero = random)

	SectorSize int // -s size / -d sectsize (bytes, 0 = probe)

	seen map[string]bool // "d.agcount" → given on the command line
}

// NewOptions returns the defaults of mkfs.xfs 6.1.
func NewOptions() *Options {
	return &Options{
		OwnerUID:    -1,
		OwnerGID:    -1,
		SizeMargin:  DefaultSizeMargin,
		ProjInherit: -1,
		InodeAlign:  true,
		AttrVersion: 2,
		ProjID32:    true,
		Sparse:      true,
		LogInternal: true,
		LogVersion:  2,
		LazyCount:   true,
		DirVersion:  2,
		FType:       true,
		CRC:         true,
		Finobt:      true,
		Reflink:     true,
		InobtCount:  true,
		Bigtime:     true,
	}
}

// IsSet reports whether class.name (e.g. 'd', "agcount") was given.
func (o *Options) IsSet(class byte, name string) bool {
	return o.seen[string(class)+"."+name]
}

const needsVal = int64(-1 << 62)

type subopt struct {
	name      string
	convert   bool // accepts size suffixes
	pow2      bool
	str       bool // kept as a string (converted later or a path)
	min, max  int64
	def       int64
	conflicts []string // class.name
}

const (
	minBlockSize  = 512
	maxBlockSize  = 65536
	minSectorSize = 512
	maxSectorSize = 32768
	agMinBytes    = 1 << 24 // 16 MiB
	agMaxBytes    = 1 << 40 // 1 TiB
	maxAGNumber   = 0xfffffffe
	minLogBytes   = 10 << 20
	maxLogBytes   = 2<<30 - minLogBytes
	minLogBlocks  = 512
	maxLogBlocks  = 1 << 20
	maxLogRecord  = 256 << 10
	minRecDirLog  = 12
	minRTExtSize  = 4096
	maxInt        = 1<<31 - 1
	maxUint       = 1<<32 - 1
	maxInt64      = 1<<63 - 1
)

var suboptTable = map[byte][]subopt{
	'b': {
		{name: "size", convert: true, pow2: true, min: minBlockSize, max: maxBlockSize, def: needsVal},
	},
	'c': {
		{name: "options", str: true, def: needsVal},
	},
	'd': {
		{name: "agcount", min: 1, max: maxAGNumber, def: needsVal, conflicts: []string{"d.agsize"}},
		{name: "file", min: 0, max: 1, def: 1},
		{name: "name", str: true, def: needsVal},
		{name: "size", str: true, convert: true, min: agMinBytes, max: maxInt64, def: needsVal},
		{name: "sunit", min: 0, max: maxUint, def: needsVal, conflicts: []string{"d.noalign", "d.su", "d.sw"}},
		{name: "swidth", min: 0, max: maxUint, def: needsVal, conflicts: []string{"d.noalign", "d.su", "d.sw"}},
		{name: "agsize", str: true, convert: true, min: agMinBytes, max: agMaxBytes, def: needsVal, conflicts: []string{"d.agcount"}},
		{name: "su", str: true, convert: true, min: 0, max: maxUint, def: needsVal, conflicts: []string{"d.noalign", "d.sunit", "d.swidth"}},
		{name: "sw", min: 0, max: maxUint, def: needsVal, conflicts: []string{"d.noalign", "d.sunit", "d.swidth"}},
		{name: "sectsize", convert: true, pow2: true, min: minSectorSize, max: maxSectorSize, def: needsVal, conflicts: []string{"s.size", "s.sectsize"}},
		{name: "noalign", min: 0, max: 1, def: 1, conflicts: []string{"d.su", "d.sw", "d.sunit", "d.swidth"}},
		{name: "rtinherit", min: 0, max: 1, def: 1},
		{name: "projinherit", min: 0, max: maxUint, def: needsVal},
		{name: "extszinherit", min: 0, max: maxUint, def: needsVal},
		{name: "cowextsize", min: 0, max: maxUint, def: needsVal},
		{name: "daxinherit", min: 0, max: 1, def: 1},
	},
	'i': {
		{name: "align", min: 0, max: 1, def: 1},
		{name: "maxpct", min: 0, max: 100, def: needsVal},
		{name: "perblock", pow2: true, min: 2, max: maxBlockSize / 256, def: needsVal, conflicts: []string{"i.size"}},
		{name: "size", pow2: true, min: 256, max: 2048, def: needsVal, conflicts: []string{"i.perblock"}},
		{name: "attr", min: 0, max: 2, def: needsVal},
		{name: "projid32bit", min: 0, max: 1, def: 1},
		{name: "sparse", min: 0, max: 1, def: 1},
		{name: "nrext64", min: 0, max: 1, def: 1},
	},
	'l': {
		{name: "agnum", min: 0, max: maxUint, def: needsVal, conflicts: []string{"l.logdev"}},
		{name: "internal", min: 0, max: 1, def: 1, conflicts: []string{"l.file", "l.logdev", "l.sectsize"}},
		{name: "size", str: true, convert: true, min: 2 << 20, max: maxLogBytes, def: needsVal},
		{name: "version", min: 1, max: 2, def: needsVal},
		{name: "sunit", min: 1, max: maxLogRecord / 512, def: needsVal, conflicts: []string{"l.su"}},
		{name: "su", str: true, convert: true, min: 512, max: maxLogRecord, def: needsVal, conflicts: []string{"l.sunit"}},
		{name: "logdev", str: true, def: needsVal, conflicts: []string{"l.agnum", "l.name", "l.internal"}},
		{name: "sectsize", convert: true, pow2: true, min: minSectorSize, max: maxSectorSize, def: needsVal, conflicts: []string{"l.internal"}},
		{name: "file", min: 0, max: 1, def: 1, conflicts: []string{"l.internal"}},
		{name: "name", str: true, def: needsVal, conflicts: []string{"l.agnum", "l.logdev", "l.internal"}},
		{name: "lazy-count", min: 0, max: 1, def: 1},
	},
	'm': {
		{name: "crc", min: 0, max: 1, def: 1},
		{name: "finobt", min: 0, max: 1, def: 1},
		{name: "uuid", str: true, def: needsVal},
		{name: "rmapbt", min: 0, max: 1, def: 1},
		{name: "reflink", min: 0, max: 1, def: 1},
		{name: "inobtcount", min: 0, max: 1, def: 1},
		{name: "bigtime", min: 0, max: 1, def: 1},
	},
	'n': {
		{name: "size", str: true, convert: true, pow2: true, min: 1 << minRecDirLog, max: maxBlockSize, def: needsVal},
		{name: "version", str: true, min: 2, max: 2, def: needsVal},
		{name: "ftype", min: 0, max: 1, def: 1},
	},
	'r': {
		{name: "extsize", str: true, convert: true, min: minRTExtSize, max: 1 << 30, def: needsVal},
		{name: "size", str: true, convert: true, min: 0, max: maxInt64, def: needsVal},
		{name: "rtdev", str: true, def: needsVal, conflicts: []string{"r.name"}},
		{name: "file", min: 0, max: 1, def: 1},
		{name: "name", str: true, def: needsVal, conflicts: []string{"r.rtdev"}},
		{name: "noalign", min: 0, max: 1, def: 1},
	},
	's': {
		{name: "size", convert: true, pow2: true, min: minSectorSize, max: maxSectorSize, def: needsVal, conflicts: []string{"s.sectsize", "d.sectsize"}},
		{name: "sectsize", convert: true, pow2: true, min: minSectorSize, max: maxSectorSize, def: needsVal, conflicts: []string{"s.size", "d.sectsize"}},
	},
}

func lookupSubopt(class byte, name string) (*subopt, bool) {
	for i := range suboptTable[class] {
		if suboptTable[class][i].name == name {
			return &suboptTable[class][i], true
		}
	}
	return nil, false
}

// ParseSubopts parses one mkfs.xfs option argument such as
// ParseSubopts('d', "agcount=4,size=1g").
func (o *Options) ParseSubopts(class byte, arg string) error {
	if _, ok := suboptTable[class]; !ok {
		return usagef("unknown option -%c", class)
	}
	for _, tok := range strings.Split(arg, ",") {
		if tok == "" {
			continue
		}
		name, value, _ := strings.Cut(tok, "=")
		if err := o.Set(class, name, value); err != nil {
			return err
		}
	}
	return nil
}

// Set applies one sub-option (value "" means given without a value).
func (o *Options) Set(class byte, name, value string) error {
	sp, ok := lookupSubopt(class, name)
	if !ok {
		tok := name
		if value != "" {
			tok += "=" + value
		}
		return usagef("unknown option -%c %s", class, tok)
	}
	key := string(class) + "." + name
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	if o.seen[key] {
		return usagef("-%c %s option respecified", class, name)
	}
	for _, c := range sp.conflicts {
		if o.seen[c] {
			return usagef("Cannot specify both -%c %s and -%c %s", c[0], c[2:], class, name)
		}
	}
	o.seen[key] = true
	if sp.str {
		if value == "" {
			return usagef("-%c %s option requires a value", class, name)
		}
		return o.setString(class, name, value)
	}
	n, err := subNum(class, sp, value, 0, 0)
	if err != nil {
		return err
	}
	return o.setNum(class, name, n)
}

// subNum converts a numeric sub-option value the way mkfs.xfs's getnum does.
func subNum(class byte, sp *subopt, value string, blockSize, sectorSize int) (int64, error) {
	if value == "" {
		if sp.def == needsVal {
			return 0, usagef("-%c %s option requires a value", class, sp.name)
		}
		return sp.def, nil
	}
	bad := func(reason string) error {
		return usagef("Invalid value %s for -%c %s option. %s", value, class, sp.name, reason)
	}
	var c int64
	if sp.convert {
		v, ok := cvtnum(blockSize, sectorSize, value)
		if !ok {
			return 0, bad("Not a valid value or illegal suffix")
		}
		c = v
	} else {
		v, rest, ok := strtoll(value)
		if !ok {
			return 0, bad("Value not recognized as number.")
		}
		if rest != "" {
			return 0, bad("Unit suffixes are not allowed.")
		}
		c = v
	}
	if c < sp.min {
		return 0, bad("Value is too small.")
	}
	if c > sp.max {
		return 0, bad("Value is too large.")
	}
	if sp.pow2 && c&(c-1) != 0 {
		return 0, bad("Value must be a power of 2.")
	}
	return c, nil
}

// convertLater converts a size option kept as a string once the block and
// sector sizes are known.
func convertLater(class byte, name, value string, blockSize, sectorSize int) (int64, error) {
	sp, _ := lookupSubopt(class, name)
	return subNum(class, sp, value, blockSize, sectorSize)
}

// strtoll parses a C integer (decimal, 0x hex or 0 octal) prefix of s.
func strtoll(s string) (v int64, rest string, ok bool) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := 10
	start := i
	switch {
	case i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && isDigit(s[i+2], 16):
		base = 16
		i += 2
		start = i
	case i < len(s) && s[i] == '0':
		base = 8
	}
	j := i
	for j < len(s) && isDigit(s[j], base) {
		j++
	}
	if j == start {
		return 0, s, false
	}
	u, err := strconv.ParseUint(s[start:j], base, 63)
	if err != nil {
		u = 1<<63 - 1 // strtoll saturates
	}
	v = int64(u)
	if neg {
		v = -v
	}
	return v, s[j:], true
}

func isDigit(c byte, base int) bool {
	switch {
	case c >= '0' && c <= '9':
		return int(c-'0') < base
	case c >= 'a' && c <= 'f':
		return base == 16
	case c >= 'A' && c <= 'F':
		return base == 16
	}
	return false
}

// cvtnum converts a number with an optional unit suffix as mkfs.xfs does:
// s (sectors), b (filesystem blocks), k, m, g, t, p, e (powers of 1024).
func cvtnum(blockSize, sectorSize int, s string) (int64, bool) {
	v, rest, ok := strtoll(s)
	if !ok {
		return 0, false
	}
	if rest == "" {
		return v, true
	}
	if len(rest) != 1 {
		return 0, false
	}
	var mult int64
	switch rest[0] | 0x20 {
	case 'b':
		mult = int64(blockSize)
	case 's':
		mult = int64(sectorSize)
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	case 't':
		mult = 1 << 40
	case 'p':
		mult = 1 << 50
	case 'e':
		mult = 1 << 60
	}
	if mult == 0 {
		return 0, false
	}
	return v * mult, true
}

func (o *Options) setString(class byte, name, value string) error {
	switch string(class) + "." + name {
	case "c.options":
		return usagef("-c options= (configuration files) is not supported")
	case "d.name":
		o.Target = value
	case "d.size":
		o.DataSize = value
	case "d.agsize":
		o.AGSize = value
	case "d.su":
		o.DataSU = value
	case "l.size":
		o.LogSize = value
	case "l.su":
		o.LogSU = value
	case "l.logdev", "l.name":
		o.LogDevice = value
		o.LogInternal = false
	case "m.uuid":
		u, err := ondisk.ParseUUID(value)
		if err != nil {
			return usagef("Invalid value %s for -m uuid option", value)
		}
		o.UUID = u
	case "n.size":
		o.DirBlockSize = value
	case "n.version":
		if strings.EqualFold(value, "ci") {
			o.ASCIICI = true
			return nil
		}
		sp, _ := lookupSubopt('n', "version")
		v, err := subNum('n', sp, value, 0, 0)
		if err != nil {
			return err
		}
		o.DirVersion = int(v)
	case "r.rtdev", "r.name":
		o.RTDevice = value
	case "r.extsize":
		o.RTExtSize = value
	case "r.size":
		o.RTSize = value
	}
	return nil
}

func (o *Options) setNum(class byte, name string, n int64) error {
	b := n != 0
	switch string(class) + "." + name {
	case "b.size":
		o.BlockSize = int(n)
	case "d.agcount":
		o.AGCount = n
	case "d.file":
		o.DataFile = b
	case "d.sunit":
		o.DataSunit = int(n)
	case "d.swidth":
		o.DataSwidth = int(n)
	case "d.sw":
		o.DataSW = int(n)
	case "d.noalign":
		o.NoAlign = b
	case "d.sectsize", "s.size", "s.sectsize":
		o.SectorSize = int(n)
		if class == 's' {
			o.LogSectSize = int(n)
		}
	case "d.rtinherit":
		o.RTInherit = b
	case "d.projinherit":
		o.ProjInherit = n
	case "d.extszinherit":
		o.ExtSzInherit = n
	case "d.cowextsize":
		o.CowExtSize = n
	case "d.daxinherit":
		o.DAXInherit = b
	case "i.align":
		o.InodeAlign = b
	case "i.maxpct":
		o.IMaxPct = int(n)
	case "i.perblock":
		o.InodesPerBlock = int(n)
	case "i.size":
		o.InodeSize = int(n)
	case "i.attr":
		o.AttrVersion = int(n)
	case "i.projid32bit":
		o.ProjID32 = b
	case "i.sparse":
		o.Sparse = b
	case "i.nrext64":
		o.Nrext64 = b
	case "l.agnum":
		o.LogAGNum = n
	case "l.internal":
		o.LogInternal = b
	case "l.version":
		o.LogVersion = int(n)
	case "l.sunit":
		o.LogSunit = int(n)
	case "l.sectsize":
		o.LogSectSize = int(n)
	case "l.file":
		if b {
			return usagef("external log files are not supported; use an internal log")
		}
	case "l.lazy-count":
		o.LazyCount = b
	case "m.crc":
		o.CRC = b
	case "m.finobt":
		o.Finobt = b
	case "m.rmapbt":
		o.Rmapbt = b
	case "m.reflink":
		o.Reflink = b
	case "m.inobtcount":
		o.InobtCount = b
	case "m.bigtime":
		o.Bigtime = b
	case "n.ftype":
		o.FType = b
	case "r.file", "r.noalign":
		// Realtime devices are refused by Plan.
	}
	return nil
}

// validateFields checks fields set directly (not through Set) against the
// same ranges mkfs.xfs applies while parsing.
func (o *Options) validateFields() error {
	nums := []struct {
		class byte
		name  string
		v     int64
	}{
		{'b', "size", int64(o.BlockSize)}, {'d', "agcount", o.AGCount}, {'d', "sunit", int64(o.DataSunit)},
		{'d', "swidth", int64(o.DataSwidth)}, {'d', "sw", int64(o.DataSW)}, {'d', "extszinherit", o.ExtSzInherit},
		{'d', "cowextsize", o.CowExtSize}, {'i', "maxpct", int64(o.IMaxPct)}, {'i', "perblock", int64(o.InodesPerBlock)},
		{'i', "size", int64(o.InodeSize)}, {'l', "agnum", o.LogAGNum}, {'l', "sunit", int64(o.LogSunit)},
		{'l', "sectsize", int64(o.LogSectSize)}, {'s', "size", int64(o.SectorSize)},
	}
	for _, n := range nums {
		if n.v == 0 {
			continue
		}
		sp, _ := lookupSubopt(n.class, n.name)
		if n.v < sp.min || n.v > sp.max || sp.pow2 && n.v&(n.v-1) != 0 {
			return usagef("Invalid value %d for -%c %s option", n.v, n.class, n.name)
		}
	}
	if o.ProjInherit < -1 || o.ProjInherit > maxUint {
		return usagef("Invalid value %d for -d projinherit option", o.ProjInherit)
	}
	return nil
}
