package e2e

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/runner"
)

// chromium returns the headless browser, or ends the test (a failure under
// CI=true: scripts/test installs Debian's chromium).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium: run scripts/test, which installs Debian's chromium package"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browse runs headless Chromium on url with a fresh profile.
func browse(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,800"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestWebPage renders the runner's page in headless Chromium with a running
// job: the DOM has the job, its state and its checkpoint history, and the
// screenshot shows the green RUNNING badge.
func TestWebPage(t *testing.T) {
	browser := chromium(t)
	brokers := testenv.Kafka(t)
	topic := testenv.KafkaTopic(t, brokers, "lines", 2)
	onceflow := proctest.Build(t, mod+"/cmd/onceflow")
	loadgen := proctest.Build(t, mod+"/examples/wordcount/loadgen")
	url := startRunner(t, onceflow, filepath.Join(t.TempDir(), "runner"), "127.0.0.1:0").url
	id := submitted(t, mustCLI(t, onceflow, url, "submit", "--json", "--name", "loadgen", "--config", "checkpoint-interval=200ms",
		loadgen, "--", "-brokers", strings.Join(brokers, ","), "-topic", topic, "-rate", "500"))
	waitJob(t, onceflow, url, id, time.Minute, "running with checkpoints", func(v *runner.JobView) bool {
		return v.State == runner.StateRunning && v.CheckpointsCompleted >= 3
	})

	dom := browse(t, browser, url+"/", "--dump-dom")
	for _, want := range []string{`id="job-` + id + `"`, "RUNNING", "Checkpoint history of " + id, id + "/loadgen/checkpoints/"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q:\n%s", want, dom)
		}
	}

	shot := filepath.Join(t.TempDir(), "page.png")
	browse(t, browser, url+"/", "--screenshot="+shot, "--hide-scrollbars")
	if dir := os.Getenv("ONCEFLOW_SCREENSHOT_DIR"); dir != "" {
		if data, err := os.ReadFile(shot); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "runner-page.png"), data, 0o644)
		}
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	colors := map[uint32]bool{}
	green := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r>>8 == 0x1a && g>>8 == 0x7f && bl>>8 == 0x37 { // the RUNNING badge
				green++
			}
		}
	}
	if b.Dx() != 1280 || len(colors) < 20 || green < 100 {
		t.Fatalf("screenshot %v: %d colors, %d pixels of the RUNNING badge: the page did not render", b, len(colors), green)
	}
	t.Logf("screenshot %dx%d: %d colors, %d badge pixels", b.Dx(), b.Dy(), len(colors), green)
	mustCLI(t, onceflow, url, "cancel", id)
}
