package procclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mqttas/mqttas-go/harness/clients"
)

// The drivers' names in a clients.Registry.
const (
	NamePython = "python" // drivers/python: paho-mqtt
	NameNode   = "node"   // drivers/node: MQTT.js
	NameC      = "c"      // drivers/c: libmosquitto, built by `make c-driver`
)

// CDriverPath is where `make c-driver` puts the C driver, relative to the
// repository root.
const CDriverPath = "build/drivers/c/driver"

// ErrNoRoot is returned when no repository root holding the drivers is found.
var ErrNoRoot = errors.New("procclient: no repository root with drivers/ above the working directory")

// FindRoot returns the repository root at or above dir: the nearest
// directory holding go.mod and drivers/.
func FindRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(d, "go.mod")) && isDir(filepath.Join(d, "drivers")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%w (from %s)", ErrNoRoot, dir)
		}
		d = parent
	}
}

func isFile(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
func isDir(p string) bool  { fi, err := os.Stat(p); return err == nil && fi.IsDir() }

// Configs returns the three drivers' configurations for the repository at
// root, by name. Each driver keeps its library's resilience settings as that
// library's users would configure them (see the drivers).
func Configs(root string) map[string]Config {
	drivers := filepath.Join(root, "drivers")
	return map[string]Config{
		NamePython: Python(drivers),
		NameNode:   Node(drivers),
		NameC:      C(filepath.Join(root, CDriverPath)),
	}
}

// Registry returns the three drivers' factories for the repository at root.
// The C driver's factory refuses to make a client when the binary is not
// built, and says how to build it.
func Registry(root string) clients.Registry {
	reg := clients.Registry{}
	for name, cfg := range Configs(root) {
		f := Factory(cfg)
		if name == NameC {
			bin := cfg.Command[0]
			f = func(o clients.Options) (clients.Client, error) {
				if !isFile(bin) {
					return nil, fmt.Errorf("procclient: the C driver %s is not built: run `make c-driver`", bin)
				}
				return New(o, cfg)
			}
		}
		reg[name] = f
	}
	return reg
}

// DefaultRegistry is Registry for the repository root above the working
// directory. Without one, the names are still registered (so they are listed)
// and their factories return the error.
func DefaultRegistry() clients.Registry {
	root, err := FindRoot(".")
	if err == nil {
		return Registry(root)
	}
	reg := clients.Registry{}
	for _, name := range []string{NamePython, NameNode, NameC} {
		reg[name] = func(clients.Options) (clients.Client, error) { return nil, fmt.Errorf("client %s: %w", name, err) }
	}
	return reg
}
