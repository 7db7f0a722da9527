package procclient

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mqttas/mqttas-go/harness/clients"
)

func TestFindRootAndRegistry(t *testing.T) {
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("../../..")
	if root != want {
		t.Fatalf("FindRoot = %s, want %s", root, want)
	}
	if _, err := FindRoot(t.TempDir()); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("FindRoot(temp dir) = %v, want ErrNoRoot", err)
	}
	reg := Registry(root)
	if got := reg.Names(); !slices.Equal(got, []string{NameC, NameNode, NamePython}) {
		t.Fatalf("names %v", got)
	}
	cfg := Configs(root)[NamePython]
	if cfg.Name != NamePython || cfg.Command[1] != filepath.Join(root, "drivers", "python", "driver.py") {
		t.Fatalf("python config %+v", cfg)
	}
	// A root without the built C driver: the factory says how to build it.
	_, err = Registry(t.TempDir()).New(NameC, clients.Options{Addr: "127.0.0.1:1883"})
	if err == nil || !strings.Contains(err.Error(), "make c-driver") {
		t.Fatalf("C factory without the binary: %v", err)
	}
	c, err := reg.New(NamePython, clients.Options{Addr: "127.0.0.1:1883", ClientID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close before Connect: %v", err)
	}
}
