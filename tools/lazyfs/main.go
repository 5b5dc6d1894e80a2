// lazyfs: a file system that forgets what was not synced, for the power-loss test
// (test/e2e/power-loss.test.ts). The LazyFS technique, small: every file keeps two
// copies of its contents, what programs see and what was last fsynced; SIGUSR1 is the
// power cut: every file goes back to its synced copy, as a disk without its page cache
// would after the power came back. It prints "cut <files> <bytes lost>" once done.
//
// What it models and what not: file *contents* are lost unless fsynced (fsync and
// fdatasync alike; a file never synced comes back empty). Names — creating, renaming,
// removing files and directories — are durable at once, as on a file system with a
// synchronous metadata journal; a test that needs lost renames needs more than this.
// Everything lives in memory: the mount starts empty and is gone when lazyfs exits.
//
//	lazyfs MOUNTPOINT    mounts (root: no fusermount needed), prints "mounted", serves
//	                     until SIGTERM/SIGINT, then unmounts.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// lazyFS knows every file, so that a cut can reach them all.
type lazyFS struct {
	mu    sync.Mutex
	files map[*fileNode]struct{}
}

func (l *lazyFS) add(f *fileNode) {
	l.mu.Lock()
	l.files[f] = struct{}{}
	l.mu.Unlock()
}

func (l *lazyFS) forget(f *fileNode) {
	l.mu.Lock()
	delete(l.files, f)
	l.mu.Unlock()
}

// cut drops every unsynced byte and tells the kernel to forget what it cached.
func (l *lazyFS) cut() (files int, lost int64) {
	l.mu.Lock()
	all := make([]*fileNode, 0, len(l.files))
	for f := range l.files {
		all = append(all, f)
	}
	l.mu.Unlock()
	for _, f := range all {
		f.mu.Lock()
		if f.dirty {
			files++
			lost += int64(len(f.data))
			f.data = append([]byte(nil), f.synced...)
			f.dirty = false
		}
		f.mu.Unlock()
		f.NotifyContent(0, 0) // Page cache and cached size: read again from us.
	}
	return files, lost
}

type dirNode struct {
	fs.Inode
	lfs  *lazyFS
	mode uint32
}

type fileNode struct {
	fs.Inode
	lfs    *lazyFS
	mu     sync.Mutex
	data   []byte // what programs see
	synced []byte // what survives a cut
	dirty  bool
	mode   uint32
	mtime  time.Time
}

var (
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeSetattrer = (*dirNode)(nil)
	_ fs.NodeFsyncer   = (*dirNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeAllocater = (*fileNode)(nil)
)

func (d *dirNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | d.mode
	return 0
}

func (d *dirNode) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if mode, ok := in.GetMode(); ok {
		d.mode = mode & 0o7777
	}
	out.Mode = syscall.S_IFDIR | d.mode
	return 0
}

// Fsync of a directory: names are durable at once, nothing to do.
func (d *dirNode) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }

func (d *dirNode) Create(ctx context.Context, name string, _ uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	file := &fileNode{lfs: d.lfs, mode: mode & 0o7777, mtime: time.Now()}
	d.lfs.add(file)
	inode := d.NewPersistentInode(ctx, file, fs.StableAttr{Mode: syscall.S_IFREG})
	file.fillAttr(&out.Attr)
	return inode, nil, 0, 0
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	dir := &dirNode{lfs: d.lfs, mode: mode & 0o7777}
	out.Mode = syscall.S_IFDIR | dir.mode
	return d.NewPersistentInode(ctx, dir, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

func (d *dirNode) Unlink(_ context.Context, name string) syscall.Errno {
	child := d.GetChild(name)
	if child == nil {
		return syscall.ENOENT
	}
	if file, ok := child.Operations().(*fileNode); ok {
		d.lfs.forget(file)
	}
	return 0 // go-fuse removes the child from the tree.
}

func (d *dirNode) Rmdir(_ context.Context, name string) syscall.Errno {
	child := d.GetChild(name)
	if child == nil {
		return syscall.ENOENT
	}
	if len(child.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

func (d *dirNode) Rename(_ context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE / NOREPLACE: not needed here
	}
	if replaced := newParent.EmbeddedInode().GetChild(newName); replaced != nil {
		if file, ok := replaced.Operations().(*fileNode); ok {
			d.lfs.forget(file)
		}
	}
	return 0 // go-fuse moves the child in the tree.
}

func (f *fileNode) fillAttr(out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | f.mode
	out.Size = uint64(len(f.data))
	out.Blocks = (out.Size + 511) / 512
	out.SetTimes(nil, &f.mtime, &f.mtime)
}

func (f *fileNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fillAttr(&out.Attr)
	return 0
}

func (f *fileNode) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if size, ok := in.GetSize(); ok {
		f.resize(int64(size))
	}
	if mode, ok := in.GetMode(); ok {
		f.mode = mode & 0o7777
	}
	f.fillAttr(&out.Attr)
	return 0
}

func (f *fileNode) resize(size int64) {
	if size <= int64(len(f.data)) {
		f.data = f.data[:size]
	} else {
		f.data = append(f.data, make([]byte, size-int64(len(f.data)))...)
	}
	f.dirty = true
	f.mtime = time.Now()
}

// Open keeps the kernel's page cache off across opens (no FOPEN_KEEP_CACHE), so what a
// cut dropped is never served from it; no direct I/O, so SQLite can mmap its -shm file.
func (f *fileNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		f.mu.Lock()
		f.resize(0)
		f.mu.Unlock()
	}
	return nil, 0, 0
}

func (f *fileNode) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := off + int64(len(dest))
	if end > int64(len(f.data)) {
		end = int64(len(f.data))
	}
	return fuse.ReadResultData(append([]byte(nil), f.data[off:end]...)), 0
}

func (f *fileNode) Write(_ context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := off + int64(len(data)); end > int64(len(f.data)) {
		f.resize(end)
	}
	copy(f.data[off:], data)
	f.dirty = true
	f.mtime = time.Now()
	return uint32(len(data)), 0
}

func (f *fileNode) Allocate(_ context.Context, _ fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mode == 0 && int64(off+size) > int64(len(f.data)) {
		f.resize(int64(off + size))
	}
	return 0
}

// Fsync (and fdatasync): what programs see becomes what survives.
func (f *fileNode) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = append(f.synced[:0], f.data...)
	f.dirty = false
	return 0
}

// Flush (close) syncs nothing: that is the point.
func (f *fileNode) Flush(context.Context, fs.FileHandle) syscall.Errno { return 0 }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lazyfs MOUNTPOINT")
		os.Exit(2)
	}
	lfs := &lazyFS{files: map[*fileNode]struct{}{}}
	root := &dirNode{lfs: lfs, mode: 0o755}
	noCache := time.Duration(0)
	server, err := fs.Mount(os.Args[1], root, &fs.Options{
		// Sizes and names are asked each time: after a cut the kernel must not trust its cache.
		AttrTimeout:     &noCache,
		EntryTimeout:    &noCache,
		NegativeTimeout: &noCache,
		MountOptions: fuse.MountOptions{
			FsName:      "lazyfs",
			Name:        "lazyfs",
			DirectMount: true,
			AllowOther:  true,
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "mount %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Println("mounted")

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for sig := range signals {
			if sig == syscall.SIGUSR1 {
				files, lost := lfs.cut()
				fmt.Printf("cut %d %d\n", files, lost)
				continue
			}
			if err := server.Unmount(); err != nil {
				fmt.Fprintf(os.Stderr, "unmount: %v\n", err)
			}
			return
		}
	}()
	server.Wait()
}
