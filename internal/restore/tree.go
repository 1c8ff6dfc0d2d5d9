package restore

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"xfskit/internal/stream"
)

// Names restore keeps for itself at the top of the destination.
const (
	stateDirName  = ".xfskit-restore"
	orphanageName = ".xfskit-orphanage"
)

// orphanIno is the pseudo inode number of the orphanage (0 is never a
// dumped inode).
const orphanIno = 0

// checkName refuses names that could leave their directory. The stream
// reader refuses them too; restore does not rely on it.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("name %q not allowed", name)
	case strings.IndexByte(name, '/') >= 0:
		return fmt.Errorf("name %q contains '/'", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name %q contains NUL", name)
	case len(name) > 255*4:
		return fmt.Errorf("name of %d bytes is too long", len(name))
	}
	return nil
}

// joinPath joins a directory path ("" for the root) and a name.
func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// selection is the set of subtrees to restore (empty: everything).
type selection struct{ paths []string }

func newSelection(subtrees []string) (*selection, error) {
	s := &selection{}
	for _, p := range subtrees {
		c := path.Clean("/" + p)
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				return nil, fmt.Errorf("subtree %q: '..' is not allowed", p)
			}
		}
		c = strings.TrimPrefix(c, "/")
		if c == "" {
			return &selection{}, nil // the root selects everything
		}
		s.paths = append(s.paths, c)
	}
	return s, nil
}

func (s *selection) all() bool { return len(s.paths) == 0 }

// inside reports whether p is selected (in or below a subtree).
func (s *selection) inside(p string) bool {
	if len(s.paths) == 0 {
		return true
	}
	for _, q := range s.paths {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// onWay reports whether directory p leads to a selected subtree.
func (s *selection) onWay(p string) bool {
	if p == "" {
		return true
	}
	for _, q := range s.paths {
		if strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	return false
}

type nameRef struct {
	dir  uint64
	name string
}

// dirNode is a directory of the tree being restored.
type dirNode struct {
	ino, parent uint64
	name        string
	path        string // relative to the destination; "" for the root
	depth       int
	meta        *stream.FileMeta // nil: known only from the state (no metadata)
	xattrs      []stream.Xattr
	inside      bool   // selected: its entries are restored
	fresh       bool   // made by this restore: no default ACL, no setgid bit yet
	modeSet     bool   // made with its final mode (dirMode)
	xf          fsAttr // XFS attributes it has, when xfKnown (xflags_run.go)
	xfKnown     bool
}

// fileNode is a non-directory inode of the tree.
type fileNode struct {
	names []nameRef // selected names, in directory order
	typ   stream.FileType
}

// tree is the directory structure of a session.
type tree struct {
	root  uint64
	dirs  map[uint64]*dirNode
	order []*dirNode // top-down (breadth-first)
	files map[uint64]*fileNode
	// lostDirs are directories named by an entry but missing from the
	// directory section; their contents are unknown.
	lostDirs map[uint64]string
}

func (t *tree) filePath(r nameRef) string {
	if d := t.dirs[r.dir]; d != nil {
		return joinPath(d.path, r.name)
	}
	return r.name
}

// firstPath returns the first selected path of a file inode ("" if none).
func (t *tree) firstPath(ino uint64) string {
	if f := t.files[ino]; f != nil && len(f.names) > 0 {
		return t.filePath(f.names[0])
	}
	if d := t.dirs[ino]; d != nil {
		if d.path == "" {
			return "."
		}
		return d.path
	}
	return ""
}

// buildTree turns the merged directory section into a tree: paths by a
// breadth-first walk from the root, which also guards against cycles,
// directories with two names and duplicate names.
func buildTree(dirs map[uint64]*stream.Dir, synthetic map[uint64]bool, sel *selection, problems *[]Problem) (*tree, error) {
	t := &tree{dirs: map[uint64]*dirNode{}, files: map[uint64]*fileNode{}, lostDirs: map[uint64]string{}}
	var roots []uint64
	for ino, d := range dirs {
		if d.Parent == ino {
			roots = append(roots, ino)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("the directory section has no root directory (damaged stream?)")
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i] < roots[j] })
	for _, r := range roots[1:] {
		*problems = append(*problems, Problem{Ino: r, Reason: fmt.Sprintf("a second root directory in the directory section (the root is inode %d): ignored", roots[0])})
	}
	t.root = roots[0]
	newNode := func(d *stream.Dir, parent uint64, name, p string, depth int) *dirNode {
		n := &dirNode{ino: d.Meta.Ino, parent: parent, name: name, path: p, depth: depth, xattrs: d.Xattrs}
		if !synthetic[d.Meta.Ino] {
			m := d.Meta
			n.meta = &m
		}
		n.inside = sel.inside(p)
		return n
	}
	rootNode := newNode(dirs[t.root], t.root, "", "", 0)
	rootNode.inside = sel.all()
	t.dirs[t.root] = rootNode
	t.order = append(t.order, rootNode)
	named := map[uint64]bool{} // directories some entry names (reported if refused)
	for i := 0; i < len(t.order); i++ {
		dn := t.order[i]
		d := dirs[dn.ino]
		seen := make(map[string]struct{}, len(d.Entries))
		for _, e := range d.Entries {
			p := joinPath(dn.path, e.Name)
			if dirs[e.Ino] != nil {
				named[e.Ino] = true
			}
			if err := checkName(e.Name); err != nil {
				*problems = append(*problems, Problem{Path: joinPath(dn.path, fmt.Sprintf("%q", e.Name)), Ino: e.Ino, Reason: "refused: " + err.Error()})
				continue
			}
			if dn.ino == t.root && (e.Name == stateDirName || e.Name == orphanageName) {
				*problems = append(*problems, Problem{Path: p, Ino: e.Ino, Reason: "name reserved for restore's housekeeping: not restored"})
				continue
			}
			if _, dup := seen[e.Name]; dup {
				*problems = append(*problems, Problem{Path: p, Ino: e.Ino, Reason: "duplicate name in its directory: not restored"})
				continue
			}
			seen[e.Name] = struct{}{}
			if cd := dirs[e.Ino]; cd != nil {
				switch {
				case e.Ino == t.root:
					*problems = append(*problems, Problem{Path: p, Ino: e.Ino, Reason: "entry names the root directory: refused"})
				case t.dirs[e.Ino] != nil:
					*problems = append(*problems, Problem{Path: p, Ino: e.Ino, Reason: fmt.Sprintf("directory already named %q: second name refused", t.firstPath(e.Ino))})
				case !sel.inside(p) && !sel.onWay(p):
				default:
					n := newNode(cd, dn.ino, e.Name, p, dn.depth+1)
					t.dirs[e.Ino] = n
					t.order = append(t.order, n)
				}
				continue
			}
			if e.Type == stream.TypeDir {
				if sel.inside(p) || sel.onWay(p) {
					t.lostDirs[e.Ino] = p
				}
				continue
			}
			if !sel.inside(p) {
				continue
			}
			f := t.files[e.Ino]
			if f == nil {
				f = &fileNode{typ: e.Type}
				t.files[e.Ino] = f
			}
			f.names = append(f.names, nameRef{dn.ino, e.Name})
		}
	}
	if sel.all() {
		var unreachable []uint64
		for ino := range dirs {
			if t.dirs[ino] == nil && !synthetic[ino] && !named[ino] {
				unreachable = append(unreachable, ino)
			}
		}
		sort.Slice(unreachable, func(i, j int) bool { return unreachable[i] < unreachable[j] })
		for _, ino := range unreachable {
			if ino != t.root && dirs[ino].Parent != ino {
				*problems = append(*problems, Problem{Ino: ino, Reason: "directory not reachable from the root in the directory section: not restored"})
			}
		}
	}
	return t, nil
}

// unmatched returns the selected paths that name nothing in the tree.
func (t *tree) unmatched(sel *selection) []string {
	if sel.all() {
		return nil
	}
	have := map[string]bool{}
	for _, d := range t.order {
		have[d.path] = true
	}
	for _, f := range t.files {
		for _, n := range f.names {
			have[t.filePath(n)] = true
		}
	}
	var out []string
	for _, p := range sel.paths {
		if !have[p] {
			out = append(out, p)
		}
	}
	return out
}
