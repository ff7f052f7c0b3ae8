// Command oracle applies layer tars with containerd's own archive.Apply and prints what
// results, in the canonical listing msbimage's differential driver prints for its own
// extraction (see ../README.md for the format and the normalisations).
//
// Usage:
//
//	oracle [-mode naive|overlay] CASE...
//
// Each CASE is a directory holding layer-0.tar, layer-1.tar, … (bottom to top). For each
// case it prints "== CASE", then either "error: MESSAGE" (the layer that failed, and
// containerd's error) or "ok" and one line per visible entry below the root, then "end".
//
// Modes:
//
//	naive    every layer applied in turn onto one directory, as containerd's TestBreakouts
//	         does (and as its native snapshotter unpacks images);
//	overlay  each layer applied into its own empty directory with OverlayConvertWhiteout
//	         and WithParents (the layers below), as containerd's overlayfs snapshotter does,
//	         the result read through a read-only overlayfs mount of all of them.
//
// It must run as root (Apply chowns and mknods; overlay mode mounts).
package main

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/continuity/fs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

func main() {
	mode := flag.String("mode", "naive", "naive or overlay")
	flag.Parse()
	_ = log.SetLevel("panic")
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, c := range flag.Args() {
		fmt.Fprintf(out, "== %s\n", c)
		notes := map[string]bool{}
		lines, err := runCase(c, *mode, notes)
		for _, n := range sortedKeys(notes) {
			fmt.Fprintf(out, "note %s\n", n)
		}
		if err != nil {
			fmt.Fprintf(out, "error: %s\n", oneLine(err.Error()))
		} else {
			fmt.Fprintln(out, "ok")
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
		}
		fmt.Fprintln(out, "end")
	}
}

func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", " ")
}

// layers lists a case's layer tars, bottom to top.
func layers(dir string) ([]string, error) {
	var out []string
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("layer-%d.tar", i))
		if _, err := os.Stat(p); err != nil {
			if len(out) == 0 {
				return nil, fmt.Errorf("no layer-0.tar in %s", dir)
			}
			return out, nil
		}
		out = append(out, p)
	}
}

func runCase(dir, mode string, notes map[string]bool) ([]string, error) {
	tars, err := layers(dir)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "oracle-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if mode == "overlay" {
		return applyOverlay(work, tars, notes)
	}
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	for i, t := range tars {
		if err := applyFile(root, t, watch(root, notes, false)); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return describe(root)
}

func applyFile(root, tarPath string, opts ...archive.ApplyOpt) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = archive.Apply(context.Background(), root, f, opts...)
	return err
}

func applyOverlay(work string, tars []string, notes map[string]bool) ([]string, error) {
	var dirs []string // top first, as overlayfs and WithParents want them
	for i, t := range tars {
		d := filepath.Join(work, fmt.Sprintf("l%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		opts := []archive.ApplyOpt{
			archive.WithConvertWhiteout(archive.OverlayConvertWhiteout),
			watch(d, notes, true),
		}
		if len(dirs) > 0 {
			opts = append(opts, archive.WithParents(dirs))
		}
		if err := applyFile(d, t, opts...); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		dirs = append([]string{d}, dirs...)
	}
	merged := filepath.Join(work, "merged")
	if err := os.Mkdir(merged, 0o755); err != nil {
		return nil, err
	}
	if len(dirs) == 1 {
		// overlayfs wants two lower layers at least: add an empty one.
		empty := filepath.Join(work, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return nil, err
		}
		dirs = append(dirs, empty)
	}
	opt := "lowerdir=" + strings.Join(dirs, ":")
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, opt); err != nil {
		return nil, fmt.Errorf("mount overlay: %w", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	return describe(merged)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// watch is an Apply filter that lets every record through and notes, by looking at the
// tree just before containerd applies the record, when the record is one where containerd
// does what msbimage deliberately does not (../README.md, "Kept disagreements"). overlay:
// the layer is applied with OverlayConvertWhiteout (whiteouts become 0/0 devices).
func watch(root string, notes map[string]bool, overlay bool) archive.ApplyOpt {
	// The names this layer's whiteouts were converted at (lexically, from "/").
	whiteouts := map[string]bool{}
	return archive.WithFilter(func(hdr *tar.Header) (bool, error) {
		ppath, base := filepath.Split(hdr.Name)
		if overlay {
			name := filepath.Clean("/" + hdr.Name)
			for p := filepath.Dir(name); p != "/"; p = filepath.Dir(p) {
				if whiteouts[p] {
					// The converted whiteout (a device) stands where this record needs a
					// directory: containerd fails with "not a directory".
					notes["entry-below-own-whiteout"] = true
				}
			}
			if strings.HasPrefix(base, ".wh.") && base != ".wh..wh..opq" {
				whiteouts[filepath.Clean("/"+ppath+base[4:])] = true
			}
		}
		dir, err := fs.RootPath(root, ppath)
		if err != nil {
			return true, nil // Apply itself reports it
		}
		here, err := os.Lstat(filepath.Join(dir, base))
		isDir := err == nil && here.IsDir()
		isLink := err == nil && here.Mode()&os.ModeSymlink != 0
		switch {
		case base == ".wh..wh..opq":
			if names, _ := os.ReadDir(dir); len(names) > 0 {
				notes["opaque-over-own-entries"] = true
			}
		case strings.HasPrefix(base, ".wh."):
			if _, err := os.Lstat(filepath.Join(dir, base[4:])); err == nil {
				notes["whiteout-of-own-entry"] = true
			}
		case hdr.Typeflag == tar.TypeDir && isDir:
			notes["directory-merge"] = true
		case isDir || isLink:
			// A directory record's name is resolved again at the end to set its times:
			// replacing a directory, or a symlink it may have been reached through, changes
			// what that name is then.
			notes["dir-times-by-name"] = true
		}
		if hdr.Typeflag == tar.TypeLink {
			notes["hardlink-record-metadata"] = true
		}
		if setgidAbove(root, dir) {
			notes["setgid-parent"] = true
		}
		return true, nil
	})
}

// setgidAbove says whether containerd will make dir (missing) as a parent inside an
// existing setgid directory, whose group the kernel then gives it.
func setgidAbove(root, dir string) bool {
	if _, err := os.Lstat(dir); err == nil {
		return false
	}
	for d := filepath.Dir(dir); len(d) >= len(root); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err == nil {
			return fi.IsDir() && fi.Mode()&os.ModeSetgid != 0
		}
		if d == root {
			break
		}
	}
	return false
}

// entry is what the listing says about one path.
type entry struct {
	path  string
	st    unix.Stat_t
	line  string
	inode [2]uint64
}

// describe walks root (never following symlinks) and renders the canonical listing.
func describe(root string) ([]string, error) {
	var entries []*entry
	if err := walk(root, "", &entries); err != nil {
		return nil, err
	}
	links := map[[2]uint64][]*entry{}
	for _, e := range entries {
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			links[e.inode] = append(links[e.inode], e)
		}
	}
	var out []string
	for _, e := range entries {
		group := links[e.inode]
		first := ""
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR && len(group) > 1 {
			// The group's name: its smallest path, byte-wise.
			first = group[0].path
			for _, g := range group[1:] {
				if g.path < first {
					first = g.path
				}
			}
		}
		line, err := render(root, e, first)
		if err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	return out, nil
}

// walk lists dir's children in byte order, each directory before its children.
func walk(root, rel string, out *[]*entry) error {
	d, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		p := n
		if rel != "" {
			p = rel + "/" + n
		}
		e := &entry{path: p}
		if err := unix.Lstat(filepath.Join(root, p), &e.st); err != nil {
			if err == unix.ENOENT {
				// overlayfs lists a lower layer's whiteout in a directory that is not
				// merged, and hides it on lookup: not visible.
				continue
			}
			return err
		}
		e.inode = [2]uint64{uint64(e.st.Dev), e.st.Ino}
		*out = append(*out, e)
		if e.st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := walk(root, p, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// render gives one entry's line: see ../README.md, "The listing".
func render(root string, e *entry, linkGroup string) (string, error) {
	full := filepath.Join(root, e.path)
	var b strings.Builder
	b.WriteString(escape([]byte(e.path)))
	st := &e.st
	perm := fmt.Sprintf("%04o", st.Mode&0o7777)
	owner := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	if linkGroup != "" {
		// Apply gives the shared inode each hardlink record's mode, owner and times; GNU
		// tar, umoci and msbimage keep the target's: not compared.
		perm, owner = "----", "-:-"
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fmt.Fprintf(&b, " d %s %s", perm, owner)
	case unix.S_IFREG:
		sum, err := hashFile(full)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " f %s %s size=%d sha256=%s", perm, owner, st.Size, sum)
	case unix.S_IFLNK:
		t, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " l %s -> %s", owner, escape([]byte(t)))
	case unix.S_IFCHR, unix.S_IFBLK:
		kind := "c"
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			kind = "b"
		}
		fmt.Fprintf(&b, " %s %s %s %d,%d", kind, perm, owner, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		fmt.Fprintf(&b, " p %s %s", perm, owner)
	default:
		fmt.Fprintf(&b, " ? %o", st.Mode)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR && linkGroup == "" {
		fmt.Fprintf(&b, " t=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	}
	x, err := xattrs(full)
	if err != nil {
		return "", err
	}
	b.WriteString(x)
	if linkGroup != "" {
		b.WriteString(" =" + escape([]byte(linkGroup)))
	}
	return b.String(), nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// xattrs renders the entry's xattrs, sorted, as " x:NAME=VALUE" (overlayfs' own trusted.*
// bookkeeping is not the image's).
func xattrs(p string) (string, error) {
	buf := make([]byte, 64*1024)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if err == unix.ENOTSUP {
			return "", nil
		}
		return "", err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name != "" && !strings.HasPrefix(name, "trusted.overlay.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		v := make([]byte, 64*1024)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " x:%s=%s", escape([]byte(name)), escape(v[:m]))
	}
	return b.String(), nil
}

// escape keeps printable ASCII but space and backslash; every other byte is \xHH.
func escape(raw []byte) string {
	var b strings.Builder
	for _, c := range raw {
		if c > 0x20 && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}
