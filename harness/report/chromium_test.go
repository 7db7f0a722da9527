//go:build unix

package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromium returns the browser's path, or skips the test if Debian's
// chromium package is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not found as chromium or /usr/bin/chromium: install Debian's chromium package (apt-get install chromium) to check the page in a browser")
	return ""
}

// Chromium flags for a hermetic run: headless, no network (no proxy lookup,
// every host name unresolvable, no background services), a throwaway
// profile.
var chromiumFlags = []string{
	"--headless",
	"--no-sandbox", // tests may run as root, in a container
	"--disable-gpu",
	"--disable-dev-shm-usage",
	"--no-proxy-server",
	"--host-resolver-rules=MAP * ~NOTFOUND",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-domain-reliability",
	"--disable-sync",
	"--disable-extensions",
	"--disable-default-apps",
	"--disable-breakpad",
	"--disable-client-side-phishing-detection",
	"--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider",
	"--no-first-run",
	"--no-default-browser-check",
	"--mute-audio",
	"--hide-scrollbars",
}

// runChromium runs the browser with args on the page and returns its
// standard output. The browser and every process it starts are killed if it
// outlives timeout. Where the test may create a network namespace, the
// browser runs in an empty one, so it cannot reach any network even if a
// flag above misses a service.
func runChromium(t *testing.T, timeout time.Duration, page string, args ...string) []byte {
	t.Helper()
	bin := chromium(t)
	home := t.TempDir()
	argv := append([]string{bin}, chromiumFlags...)
	argv = append(argv, "--user-data-dir="+filepath.Join(home, "profile"))
	argv = append(argv, args...)
	argv = append(argv, "file://"+page)
	if u, err := exec.LookPath("unshare"); err == nil && exec.Command(u, "--net", "true").Run() == nil {
		argv = append([]string{u, "--net", "--"}, argv...)
		t.Log("chromium runs in an empty network namespace")
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole process group, not just the wrapper script.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of a finished run
	}
	t.Logf("chromium %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish within %v; stderr:\n%s", timeout, tail(stderr.String(), 2000))
	}
	if err != nil {
		t.Fatalf("chromium: %v; stderr:\n%s", err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestPageInChromium opens the report of a failing run in headless Chromium:
// the screenshot must be a real, non-blank image of the window's size
// showing the red banner and the plot's outage bars, and the DOM the
// browser built must hold the verdict, the plot and the tables.
func TestPageInChromium(t *testing.T) {
	chromium(t)
	dir, _ := writeRun(t, fixtureRun(t))
	page, err := filepath.Abs(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("screenshot", func(t *testing.T) {
		t.Parallel()
		shot := filepath.Join(t.TempDir(), "out.png")
		runChromium(t, 30*time.Second, page, "--screenshot="+shot, "--window-size=1280,2000")
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
			t.Fatalf("screenshot is %dx%d, want 1280x2000", b.Dx(), b.Dy())
		}
		colours, top, total := colourCounts(img)
		t.Logf("%d distinct colours; the commonest covers %.1f%%", len(colours), 100*float64(top)/float64(total))
		if len(colours) < 64 || top > total*95/100 {
			t.Errorf("screenshot looks blank: %d colours, commonest %d of %d pixels", len(colours), top, total)
		}
		// The FAIL banner (#b00020) is large; the outage bars (#cc0000) are
		// drawn from the SVG.
		if n := near(colours, 0xb0, 0x00, 0x20); n < 50_000 {
			t.Errorf("only %d pixels of the red verdict banner", n)
		}
		if n := near(colours, 0xcc, 0x00, 0x00); n < 500 {
			t.Errorf("only %d pixels of outage bars: the SVG plot did not render", n)
		}
		// REPORT_SCREENSHOT=/some/file.png keeps the screenshot for a human.
		if keep := os.Getenv("REPORT_SCREENSHOT"); keep != "" {
			b, err := os.ReadFile(shot)
			if err == nil {
				err = os.WriteFile(keep, b, 0o644)
			}
			if err != nil {
				t.Errorf("keep screenshot: %v", err)
			}
		}
	})

	t.Run("dom", func(t *testing.T) {
		t.Parallel()
		dom := string(runChromium(t, 30*time.Second, page, "--dump-dom"))
		doc := parseHTML(t, dom)
		if b := byID(t, doc, "verdict"); !strings.Contains(text(b), "FAIL") || !strings.Contains(text(b), "1 lost") {
			t.Errorf("verdict in the browser's DOM: %q", text(b))
		}
		svg := byID(t, doc, "timeline")
		if svg.Data != "svg" || len(findAll(svg, func(n *html.Node) bool { return n.Data == "rect" && hasClass(n, "fault") })) != 2 {
			t.Errorf("timeline plot in the browser's DOM: <%s> with wrong fault windows", svg.Data)
		}
		for _, id := range []string{"figures", "schedule", "faults", "clients"} {
			if len(rows(t, doc, id)) == 0 {
				t.Errorf("table %s is empty in the browser's DOM", id)
			}
		}
		if !strings.Contains(text(svg), "#1 partition") {
			t.Error("fault label missing from the browser's DOM")
		}
	})
}

// colourCounts counts the pixels of each colour, and returns the count of
// the commonest and the total.
func colourCounts(img image.Image) (map[[3]uint8]int, int, int) {
	counts := map[[3]uint8]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			counts[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]++
		}
	}
	top := 0
	for _, n := range counts {
		top = max(top, n)
	}
	return counts, top, b.Dx() * b.Dy()
}

// near counts the pixels within 3 of colour r, g, b in every channel.
func near(counts map[[3]uint8]int, r, g, b int) int {
	d := func(a uint8, c int) bool { return abs(int(a)-c) <= 3 }
	n := 0
	for c, k := range counts {
		if d(c[0], r) && d(c[1], g) && d(c[2], b) {
			n += k
		}
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
