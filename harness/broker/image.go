package broker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Images the container backend knows.
const (
	// LocalImage is built offline from the host's mosquitto (see
	// containers/mosquitto/build.sh, or BuildImage).
	LocalImage = "mqttas/mosquitto:2.0.11-local"
	// OfficialImage is preferred when present; it is never pulled.
	OfficialImage = "eclipse-mosquitto:2"
)

// ryukImage is testcontainers' reaper, started unless Ryuk is disabled.
const ryukImage = "testcontainers/ryuk:0.14.0"

// dockerfile matches containers/mosquitto/Dockerfile (a test compares the
// non-comment lines). No "# syntax=" line: that would make BuildKit pull.
const dockerfile = `# Built by harness/broker from the host's mosquitto; see containers/mosquitto.
FROM scratch
COPY rootfs/ /
EXPOSE 1883
ENTRYPOINT ["/usr/sbin/mosquitto"]
CMD ["-c", "/mosquitto/config/mosquitto.conf"]
`

// pingTimeout bounds the check that a Docker engine answers.
const pingTimeout = 3 * time.Second

// dockerClient connects to the engine testcontainers would use and checks
// that it answers within pingTimeout.
func dockerClient(ctx context.Context, logger *slog.Logger) (*testcontainers.DockerClient, error) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	// NewDockerClientWithOpts falls back to a client that was never checked.
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	logger.Debug("docker engine answers", "host", cli.DaemonHost())
	return cli, nil
}

// imagePresent reports whether ref exists in the engine's local store.
func imagePresent(ctx context.Context, cli client.APIClient, ref string) (bool, error) {
	_, err := cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("broker: inspect image %s: %w", ref, err)
	}
}

// planImage picks the image to run and says whether it must be built first.
// It fails fast wherever testcontainers would otherwise try a registry pull,
// which retries for up to 15 minutes when no registry is reachable.
func planImage(ctx context.Context, cli client.APIClient, opts Options) (image string, mustBuild bool, err error) {
	cfg := testcontainers.ReadConfig()
	if p := cfg.Config.HubImageNamePrefix; p != "" {
		return "", false, fmt.Errorf("%w: the testcontainers hub image prefix %q is set; it renames local images "+
			"so that they get pulled: unset TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX", ErrImageUnavailable, p)
	}
	if !cfg.RyukDisabled {
		ok, err := imagePresent(ctx, cli, ryukImage)
		if err != nil {
			return "", false, err
		}
		if !ok {
			return "", false, fmt.Errorf("%w: testcontainers' reaper (Ryuk, %s) is enabled but not present locally: "+
				"set TESTCONTAINERS_RYUK_DISABLED=true (exactly \"true\") before the first testcontainers call",
				ErrImageUnavailable, ryukImage)
		}
	}

	explicit, source := opts.Image, "Options.Image"
	if explicit == "" {
		explicit, source = os.Getenv(EnvImage), EnvImage
	}
	if explicit != "" {
		ok, err := imagePresent(ctx, cli, explicit)
		switch {
		case err != nil:
			return "", false, err
		case ok:
			return explicit, false, nil
		case explicit != LocalImage:
			return "", false, fmt.Errorf("%w: %s=%q is not present locally, and images are never pulled "+
				"(docker pull or docker load it first)", ErrImageUnavailable, source, explicit)
		}
	} else {
		for _, ref := range []string{OfficialImage, LocalImage} {
			ok, err := imagePresent(ctx, cli, ref)
			if err != nil {
				return "", false, err
			}
			if ok {
				return ref, false, nil
			}
		}
	}
	if _, err := findMosquitto(opts.Mosquitto); err != nil {
		return "", false, fmt.Errorf("%w: %s is missing and cannot be built: %w", ErrImageUnavailable, LocalImage, err)
	}
	return LocalImage, true, nil
}

// ResolveImage returns the image the container backend would run for opts,
// building LocalImage first when that is the choice and it is missing. Call
// it once (e.g. in SynchronizedBeforeSuite) and pass the result as
// Options.Image to spare parallel processes from building it each.
func ResolveImage(ctx context.Context, opts Options) (string, error) {
	opts = opts.withDefaults()
	cli, err := dockerClient(ctx, opts.Logger)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	image, mustBuild, err := planImage(ctx, cli, opts)
	if err != nil {
		return "", err
	}
	if mustBuild {
		if err := buildImage(ctx, cli, image, opts); err != nil {
			return "", err
		}
	}
	return image, nil
}

// BuildImage builds LocalImage under tag (LocalImage when empty) from the
// host's mosquitto binary and its shared libraries, on an empty base and with
// Docker's classic builder, so nothing is pulled. It is the Go twin of
// containers/mosquitto/build.sh; the baked-in mosquitto.conf is the one the
// container backend generates for zero Options.
func BuildImage(ctx context.Context, tag string, opts Options) error {
	opts = opts.withDefaults()
	if tag == "" {
		tag = LocalImage
	}
	cli, err := dockerClient(ctx, opts.Logger)
	if err != nil {
		return err
	}
	defer cli.Close()
	return buildImage(ctx, cli, tag, opts)
}

func buildImage(ctx context.Context, cli client.APIClient, tag string, opts Options) error {
	bin, err := findMosquitto(opts.Mosquitto)
	if err != nil {
		return fmt.Errorf("broker: build %s: %w", tag, err)
	}
	started := time.Now()
	buildCtx, err := imageContext(ctx, bin)
	if err != nil {
		return fmt.Errorf("broker: build %s: %w", tag, err)
	}
	res, err := cli.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags:        []string{tag},
		Version:     build.BuilderV1, // BuildKit would fetch its frontend image
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return fmt.Errorf("broker: build %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readBuildOutput(res.Body); err != nil {
		return fmt.Errorf("broker: build %s: %w", tag, err)
	}
	if ok, err := imagePresent(ctx, cli, tag); err != nil || !ok {
		return fmt.Errorf("broker: build %s: image missing after the build (%v)", tag, err)
	}
	opts.Logger.Debug("image built", "tag", tag, "mosquitto", bin, "took", time.Since(started))
	return nil
}

// readBuildOutput drains the engine's JSON message stream and returns the
// error it reports, if any.
func readBuildOutput(r io.Reader) error {
	dec := json.NewDecoder(r)
	var last string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading build output: %w", err)
		}
		if msg.Error != "" || msg.ErrorDetail.Message != "" {
			return fmt.Errorf("%s %s (last step: %s)", msg.Error, msg.ErrorDetail.Message, strings.TrimSpace(last))
		}
		if s := strings.TrimSpace(msg.Stream); s != "" {
			last = s
		}
	}
}

// imageContext builds the build context as a tar: the Dockerfile and
// rootfs/ holding mosquitto, the dynamic loader and libraries at the paths
// ldd reports (symlinks resolved), mosquitto.conf and the data directory.
func imageContext(ctx context.Context, bin string) (io.Reader, error) {
	libs, err := sharedLibraries(ctx, bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := &tarWriter{w: tar.NewWriter(&buf), dirs: map[string]bool{}}
	tw.file("Dockerfile", []byte(dockerfile), 0o644)
	tw.dir("rootfs/tmp", 0o1777)
	tw.dir("rootfs/mosquitto/data", 0o755)
	conf := renderConfig(confParams{listener: "1883", dataDir: containerDataDir, confDir: containerConfDir}, Options{})
	tw.file("rootfs"+containerConfPath, []byte(conf), 0o644)
	for _, src := range append([]string{bin}, libs...) {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		dst := src
		if src == bin {
			dst = "/usr/sbin/mosquitto" // where the Dockerfile's ENTRYPOINT looks
		}
		tw.file("rootfs"+dst, data, 0o755)
	}
	if err := tw.close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// sharedLibraries lists the absolute paths ldd prints for bin.
func sharedLibraries(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s (lists the libraries to copy into the image): %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, line)
		}
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s found no shared libraries (a static binary is not supported)", bin)
	}
	return libs, nil
}

// tarWriter writes root-owned entries with a fixed time, so that an unchanged
// host gives an identical context and Docker's build cache is hit.
type tarWriter struct {
	w    *tar.Writer
	dirs map[string]bool
	err  error
}

func (t *tarWriter) dir(name string, mode int64) {
	if name == "." || name == "/" || t.dirs[name] {
		return
	}
	t.dir(path.Dir(name), 0o755)
	t.dirs[name] = true
	t.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: time.Unix(0, 0)})
}

func (t *tarWriter) file(name string, data []byte, mode int64) {
	name = path.Clean(name)
	t.dir(path.Dir(name), 0o755)
	t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)})
	if t.err == nil {
		_, t.err = t.w.Write(data)
	}
}

func (t *tarWriter) header(h *tar.Header) {
	if t.err == nil {
		t.err = t.w.WriteHeader(h)
	}
}

func (t *tarWriter) close() error {
	if t.err != nil {
		return t.err
	}
	return t.w.Close()
}
