package broker

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// directives returns the non-comment, non-blank lines of a config or Dockerfile.
func directives(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

var containerParams = confParams{listener: "1883", dataDir: containerDataDir, confDir: containerConfDir}

// The image's baked-in config and the one the harness generates must not drift.
func TestRenderedConfigMatchesImageConfig(t *testing.T) {
	file, err := os.ReadFile("../../containers/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := directives(string(file))
	got := directives(renderConfig(containerParams, Options{}))
	if !slices.Equal(got, want) {
		t.Fatalf("generated directives\n%s\ndiffer from containers/mosquitto/mosquitto.conf\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// BuildImage and build.sh must build the same image.
func TestDockerfileMatchesBuildScript(t *testing.T) {
	file, err := os.ReadFile("../../containers/mosquitto/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := directives(dockerfile), directives(string(file)); !slices.Equal(got, want) {
		t.Fatalf("Go dockerfile %q differs from containers/mosquitto/Dockerfile %q", got, want)
	}
}

func TestRenderConfigOptions(t *testing.T) {
	conf := renderConfig(confParams{listener: "23456 127.0.0.1", dataDir: "/tmp/x/data/", confDir: "/tmp/x"}, Options{
		NoPersistence: true,
		Config:        []string{"max_queued_messages 0", "password_file ${CONFIG_DIR}/passwd"},
	})
	d := directives(conf)
	for _, want := range []string{"listener 23456 127.0.0.1", "persistence false", "max_queued_messages 0", "password_file /tmp/x/passwd"} {
		if !slices.Contains(d, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	for _, unwanted := range []string{"persistence true", "autosave_interval 1", "persistence_location /tmp/x/data/"} {
		if slices.Contains(d, unwanted) {
			t.Errorf("config with NoPersistence holds %q", unwanted)
		}
	}
	// Extra lines come last, so they override the defaults.
	if d[len(d)-1] != "password_file /tmp/x/passwd" {
		t.Errorf("last directive = %q, want the last Options.Config line", d[len(d)-1])
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Port: -1},
		{Port: 70000},
		{Config: []string{"listener 1\nlistener 2"}},
		{Files: map[string][]byte{"../passwd": nil}},
		{Files: map[string][]byte{"mosquitto.conf": nil}},
	} {
		if err := o.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", o)
		}
	}
	if err := (Options{Port: 23000, Files: map[string][]byte{"acl": nil}}).validate(); err != nil {
		t.Errorf("validate of good options = %v", err)
	}
	// New rejects them before touching Docker or mosquitto.
	if _, err := New(t.Context(), Options{Backend: KindProcess, Port: -1}); err == nil || errors.Is(err, ErrMosquittoNotFound) {
		t.Errorf("New with a bad port = %v, want a validation error", err)
	}
}
