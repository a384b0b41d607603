// Package host is what the operator's tool and the consoles know of the
// instances of one host (docs/PROTOCOL.md §10, several partners on one
// host): the one listing of the config directory ($SPOOLGATE_CONFIG_DIR,
// default /etc/spoolgate), where conf.properties is the unnamed instance
// run by the plain units and NAME.properties instance NAME run by the
// template units spoolgate-receiver@NAME and spoolgate-sender@NAME; and
// the state of an instance, asked at its daemons' admin addresses or
// read from its directories (Survey).
//
// It sits above the daemons (it reads the sender's directories) and
// below the tool and the daemons' mains, which hand what it finds to the
// console.
package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"spoolgate/conf"
)

// Instance is one instance of a config directory.
type Instance struct {
	Name string // "" for the unnamed one (conf.properties)
	Path string // its config file
}

// Shown is the instance's name as the tool and the console show it: "-"
// for the unnamed one.
func (i Instance) Shown() string {
	if i.Name == "" {
		return "-"
	}
	return i.Name
}

// Label names the instance and its file, for messages.
func (i Instance) Label() string {
	if i.Name == "" {
		return i.Path
	}
	return i.Name + " (" + i.Path + ")"
}

// Units returns the systemd units of the instance: the receiver's socket
// and service, and the sender's service.
func (i Instance) Units() (socket, receiver, sender string) {
	if i.Name == "" {
		return "spoolgate-receiver.socket", "spoolgate-receiver.service", "spoolgate-sender.service"
	}
	return "spoolgate-receiver@" + i.Name + ".socket", "spoolgate-receiver@" + i.Name + ".service", "spoolgate-sender@" + i.Name + ".service"
}

// File returns the config file of instance name in dir.
func File(dir, name string) string {
	if name == "" {
		return filepath.Join(dir, "conf.properties")
	}
	return filepath.Join(dir, name+".properties")
}

// ErrNoInstances reports a config directory that holds no config.
var ErrNoInstances = errors.New("no conf.properties or NAME.properties")

// List lists the instances of the config directory dir, the unnamed one
// first, then by name: conf.properties, and NAME.properties for each
// valid instance name (conf.ValidInstanceName); other files are not
// instances. A directory without any gives an error wrapping
// ErrNoInstances; one that cannot be read wraps the error of reading it
// (fs.ErrNotExist when it does not exist).
func List(dir string) ([]Instance, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("config directory: %w", err)
	}
	var out []Instance
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".properties")
		if !ok || e.IsDir() {
			continue
		}
		switch {
		case name == "conf":
			out = append(out, Instance{"", filepath.Join(dir, e.Name())})
		case conf.ValidInstanceName(name):
			out = append(out, Instance{name, filepath.Join(dir, e.Name())})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoInstances, dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
