package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// holder is a process that holds a listening TCP socket.
type holder struct {
	pid  int
	name string // the program's file name, else its comm
}

func (h holder) String() string { return fmt.Sprintf("%s (pid %d)", h.name, h.pid) }

// is reports whether h runs the program prog; a comm name is cut to 15
// bytes by the kernel.
func (h holder) is(prog string) bool {
	return h.name == prog || (len(h.name) == 15 && strings.HasPrefix(prog, h.name))
}

// listeners returns the processes that hold a TCP socket listening on
// port, in pid order, as far as this user can see them in /proc (Linux;
// nil elsewhere). Another user's processes are visible only to root.
func listeners(port int) []holder {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if i == 0 || len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port && fields[9] != "0" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	var out []holder
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && inodes[link] {
				out = append(out, holder{pid: pid, name: procName(dir)})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b holder) int { return a.pid - b.pid })
	return out
}

// procName returns the file name of the program of the process at dir
// (/proc/PID), or its comm when the executable link cannot be read.
func procName(dir string) string {
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)")) // replaced by an upgrade
	}
	comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
	return strings.TrimSpace(string(comm))
}
