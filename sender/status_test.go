package sender

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/fsutil"
)

func TestStatusAndRequeue(t *testing.T) {
	c := testConf(t, "127.0.0.1:1")
	inflight := filepath.Join(c.SpoolDir, InflightDir)
	now := time.Now()
	writeFile(t, filepath.Join(c.SpoolDir, "a.txt"), body(1)+"\n", now.Add(-time.Hour))
	writeFile(t, filepath.Join(c.SpoolDir, "b.txt"), body(2)+"\n", now.Add(-time.Minute))
	writeFile(t, filepath.Join(c.SpoolDir, ".hidden"), "x", now.Add(-9*time.Hour))
	writeFile(t, filepath.Join(c.SpoolDir, "up.tmp"), "x", now.Add(-9*time.Hour))
	writeFile(t, filepath.Join(inflight, "c.txt"), body(3)+"\n", now.Add(-2*time.Hour))
	writeFile(t, filepath.Join(inflight, ackName("c.txt")), "lines=0 offset=0 size=1 mtime=1\n", time.Time{})
	writeFile(t, filepath.Join(c.FailedDir, "f1.txt"), body(4)+"\n", time.Time{})
	writeFile(t, filepath.Join(c.FailedDir, "f1.txt.reason"), "time: x\n", time.Time{})
	writeFile(t, filepath.Join(c.FailedDir, "m.txt.line-2"), body(5)+"\n", time.Time{})
	writeFile(t, filepath.Join(c.FailedDir, "m.txt.line-2.reason"), "time: x\n", time.Time{})
	writeFile(t, filepath.Join(c.FailedDir, "a.txt"), body(6)+"\n", time.Time{})
	if err := os.Symlink("/etc/passwd", filepath.Join(c.FailedDir, "link")); err != nil {
		t.Fatal(err)
	}

	st, err := ReadStatus(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 2 || st.InFlight != 1 || st.Failed != 4 || math.Abs(st.OldestPendingSeconds-7200) > 2 {
		t.Fatalf("status = %+v", st)
	}
	failed, err := FailedFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.txt", "f1.txt", "m.txt.line-2"}; !slices.Equal(failed, want) {
		t.Fatalf("FailedFiles = %v, want %v", failed, want)
	}

	for _, tc := range []struct {
		arg     string
		to      string // name in the spool; "" for an error
		wantErr string
	}{
		{arg: "f1.txt", to: "f1.txt"},
		{arg: filepath.Join(c.FailedDir, "m.txt.line-2"), to: "m.txt.line-2"},
		{arg: "a.txt", to: "a.txt.1"}, // the spool has an a.txt
		{arg: "f1.txt", wantErr: "no such file"},
		{arg: "m.txt.line-2.reason", wantErr: "not a failed file"},
		{arg: "link", wantErr: "symbolic link"},
		{arg: "/elsewhere/x", wantErr: "not in failed_dir"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			res := Requeue(c, []string{tc.arg})
			if len(res) != 1 {
				t.Fatalf("results %v", res)
			}
			got := res[0]
			if tc.wantErr != "" {
				if got.Err == nil || !strings.Contains(got.Err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", got.Err, tc.wantErr)
				}
				return
			}
			if got.Err != nil || got.To != filepath.Join(c.SpoolDir, tc.to) {
				t.Fatalf("Requeue = %+v, want to %s", got, tc.to)
			}
			if _, err := os.Stat(filepath.Join(c.FailedDir, filepath.Base(tc.arg)+ReasonSuffix)); !os.IsNotExist(err) {
				t.Fatalf("reason file still there: %v", err)
			}
		})
	}
	st, err = ReadStatus(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 5 || st.Failed != 1 {
		t.Fatalf("after requeue: %+v", st)
	}
	if got := visible(t, c.FailedDir); !slices.Equal(got, []string{"link"}) {
		t.Fatalf("failed_dir after requeue: %v", got)
	}
}

func TestStatusMissingDirs(t *testing.T) {
	c := testConf(t, "127.0.0.1:1")
	c.FailedDir = filepath.Join(t.TempDir(), "never-created")
	if st, err := ReadStatus(c, time.Now()); err != nil || st != (Status{SpoolDir: c.SpoolDir, FailedDir: c.FailedDir}) {
		t.Fatalf("status = %+v, %v", st, err)
	}
	c.SpoolDir = filepath.Join(t.TempDir(), "nope")
	if _, err := ReadStatus(c, time.Now()); err == nil {
		t.Fatal("a missing spool is not an error")
	}
}

func TestOneSenderPerSpool(t *testing.T) {
	c := testConf(t, "127.0.0.1:1")
	runSender(t, c, nil)
	s2, err := New(Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Run(t.Context()); !errors.Is(err, fsutil.ErrLocked) {
		t.Fatalf("second Run: %v, want ErrLocked", err)
	}
	if got := listDir(t, c.SpoolDir); !slices.Equal(got, []string{InflightDir}) {
		t.Fatalf("spool holds %v", got)
	}
}
