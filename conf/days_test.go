package conf

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"400d", 400 * Day, true},
		{"0d", 0, true},
		{"1d12h", 36 * time.Hour, true},
		{"1d30m15s", Day + 30*time.Minute + 15*time.Second, true},
		{"-2d", -2 * Day, true},
		{"+3d", 3 * Day, true},
		{"36h", 36 * time.Hour, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0s", 0, true},
		{"106751d", 106751 * Day, true},
		{"106752d", 0, false}, // beyond time.Duration
		{"106751d23h59m", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"1d-1h", 0, false},
		{"1dd", 0, false},
		{"1y", 0, false},
		{"400", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for d, want := range map[time.Duration]string{0: "0d", 400 * Day: "400d", 36 * time.Hour: "36h0m0s"} {
		if got := formatDays(d); got != want {
			t.Errorf("formatDays(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestJournalDir: journal.dir's ${log.dir} follows log.dir; with log.dir
// empty the default turns the journal off (a config from before the
// journal starts as it did), and JournalOff says why.
func TestJournalDir(t *testing.T) {
	tests := []struct {
		file, want, off string
	}{
		{"", "/var/log/spoolgate/journal", ""},
		{"log.dir = /srv/log/acme\n", "/srv/log/acme/journal", ""},
		{"log.dir = /srv/log\njournal.dir = ${log.dir}/trail/x/\n", "/srv/log/trail/x", ""},
		{"log.dir = /srv/log\njournal.dir = ${log.dir}\n", "/srv/log", ""},
		{"journal.dir = var/journal\n", "var/journal", ""},
		{"log.dir =\n", "", "log.dir is empty"},
		{"log.dir =\njournal.dir = /srv/journal\n", "/srv/journal", ""},
		{"journal.dir =\n", "", "journal.dir is empty"},
	}
	for _, tt := range tests {
		c, err := Load(write(t, "conf.properties", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if c.Journal.Dir != tt.want || (tt.off == "") != (c.JournalOff() == "") || !strings.Contains(c.JournalOff(), tt.off) {
			t.Errorf("%q: dir %q off %q, want %q off %q", tt.file, c.Journal.Dir, c.JournalOff(), tt.want, tt.off)
		}
	}
}

// TestValidateKeep: a Config built in code is held to the same bounds.
func TestValidateKeep(t *testing.T) {
	c := Default()
	c.Journal.Keep = time.Hour
	if err := c.Validate(); err == nil || err.Error() != `journal.keep = "1h0m0s": 0d (keep forever) or at least 1d, e.g. 400d` {
		t.Errorf("Validate: %v", err)
	}
	c = Default()
	c.Sender.SentKeep = -Day
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sender.sent_keep") {
		t.Errorf("Validate: %v", err)
	}
	c = Default()
	c.Journal.Dir = c.Receiver.DataDir
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "a directory other than receiver.data_dir") {
		t.Errorf("Validate: %v", err)
	}
}
