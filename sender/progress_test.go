package sender

import (
	"bytes"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// claimFor writes a claimed file of n lines in a fresh .inflight and
// returns the dirs, its content and the offsets of its lines (from line 1).
func claimFor(t *testing.T, n int) (dirs, []byte, os.FileInfo, []int) {
	t.Helper()
	d := newDirs(t.TempDir(), "", "")
	if err := d.ensure(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	starts := []int{0}
	for i := 1; i <= n; i++ {
		b.WriteString(body(i) + "\n")
		starts = append(starts, b.Len())
	}
	fi := writeFile(t, filepath.Join(d.inflight, "m.txt"), b.String(), time.Now().Add(-time.Hour))
	return d, []byte(b.String()), fi, starts
}

// recordOf is the record saying that lines lines of data (fi) are done.
func recordOf(fi os.FileInfo, data []byte, starts []int, lines int) ack {
	off := starts[lines]
	return ack{lines: lines, offset: int64(off), size: fi.Size(), mtime: fi.ModTime().UnixNano(),
		crc: crc32.Checksum(data[:off], crcTable), hasCRC: true}
}

// sidecar lays out slot 0 and slot 1 (nil: never written) as createAck and
// write do.
func sidecar(slot0, slot1 []byte) []byte {
	b := append([]byte(nil), slot0...)
	if slot1 != nil {
		b = append(b, make([]byte, slotStride-len(b))...)
		b = append(b, slot1...)
	}
	return b
}

// TestReadAck: of a sidecar's two slots the restart takes the valid one
// with the most lines done; a slot torn by a power loss (cut short, or a
// byte changed) is skipped for the other one; a sidecar written before the
// slots (one line, no sum) is read as before; nothing readable resumes
// nothing.
func TestReadAck(t *testing.T) {
	d, data, fi, starts := claimFor(t, 40)
	slot := func(lines int) []byte { return appendSlot(nil, recordOf(fi, data, starts, lines)) }
	flip := func(b []byte, i int) []byte { b = append([]byte(nil), b...); b[i] ^= 0x10; return b }
	legacy := recordOf(fi, data, starts, 7)
	noCRC := legacy
	noCRC.hasCRC = false
	for _, tc := range []struct {
		name  string
		file  []byte // nil: no sidecar
		lines int
		err   bool
	}{
		{name: "no sidecar", file: nil},
		{name: "slot 0 only", file: sidecar(slot(8), nil), lines: 8},
		{name: "slot 1 newer", file: sidecar(slot(8), slot(16)), lines: 16},
		{name: "slot 0 newer", file: sidecar(slot(24), slot(16)), lines: 24},
		{name: "slot 1 cut short", file: sidecar(slot(8), slot(16)[:100]), lines: 8},
		{name: "slot 1 without its LF", file: sidecar(slot(8), slot(16)[:slotLen-1]), lines: 8},
		{name: "slot 0 a byte changed", file: sidecar(flip(slot(24), 7), slot(16)), lines: 16},
		{name: "slot 0 zeroed", file: sidecar(make([]byte, slotLen), slot(16)), lines: 16},
		{name: "sum changed", file: sidecar(slot(8), flip(slot(16), strings.Index(string(slot(16)), " sum=")+6)), lines: 8},
		{name: "both torn", file: sidecar(slot(8)[:50], flip(slot(16), 3)), err: true},
		{name: "before the slots, with crc", file: []byte(legacy.String()), lines: 7},
		{name: "before the slots, without crc", file: []byte(noCRC.String()), lines: 7},
		{name: "of another file", file: []byte("lines=1 offset=10 size=1 mtime=1\n"), err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(d.inflight, ackName("m.txt"))
			_ = os.Remove(path)
			if tc.file != nil {
				writeFile(t, path, string(tc.file), time.Time{})
			}
			a, err := d.readAck("m.txt", fi, data)
			if (err != nil) != tc.err {
				t.Fatalf("readAck error %v, want error %v", err, tc.err)
			}
			if a.lines != tc.lines || (a.lines > 0 && int(a.offset) != starts[a.lines]) {
				t.Fatalf("readAck = %d lines at offset %d, want %d lines at %d", a.lines, a.offset, tc.lines, starts[tc.lines])
			}
		})
	}
}

// TestAckFile: the first record creates the sidecar (replacing one written
// before the slots); each later one goes to the other slot, in place, and
// a restart reads the last one; the file never grows past two slots.
func TestAckFile(t *testing.T) {
	d, data, fi, starts := claimFor(t, 40)
	path := filepath.Join(d.inflight, ackName("m.txt"))
	writeFile(t, path, recordOf(fi, data, starts, 3).String(), time.Time{})
	before, _ := os.Stat(path)
	af, err := d.createAck("m.txt", recordOf(fi, data, starts, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer af.close()
	created, _ := os.Stat(path)
	if os.SameFile(before, created) {
		t.Fatal("the sidecar from before the slots was overwritten in place, not replaced")
	}
	for lines := 4; lines <= 40; lines += 4 {
		if lines > 4 {
			if err := af.write(recordOf(fi, data, starts, lines)); err != nil {
				t.Fatal(err)
			}
			if err := af.sync(); err != nil {
				t.Fatal(err)
			}
		}
		a, err := d.readAck("m.txt", fi, data)
		if err != nil || a.lines != lines {
			t.Fatalf("after recording %d lines: readAck = %d lines, %v", lines, a.lines, err)
		}
		b, _ := os.ReadFile(path)
		i := (lines/4 - 1) % 2 * slotStride // slot 0, 1, 0, …
		if s, ok := parseSlot(b[i:]); !ok || s.lines != lines {
			t.Fatalf("record of %d lines not in slot %d", lines, i/slotStride)
		}
		if len(b) > slotStride+slotLen || !bytes.HasSuffix(b[:slotLen], []byte{'\n'}) {
			t.Fatalf("sidecar is %d bytes", len(b))
		}
	}
	now, _ := os.Stat(path)
	if !os.SameFile(created, now) {
		t.Fatal("a record replaced the sidecar instead of writing it in place")
	}
}

// recorded is the progress recorded for the claim name in spool.
func recorded(t *testing.T, spool, name string) ack {
	t.Helper()
	d := newDirs(spool, "", "")
	path := filepath.Join(d.inflight, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.inflight, ackName(name))); err != nil {
		t.Fatalf("no progress record: %v", err)
	}
	a, err := d.readAck(name, fi, data)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
