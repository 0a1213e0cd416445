package api

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/onceflow/onceflow/runner"
)

// The page is rendered on the server and refreshes itself every two
// seconds: no JavaScript, so it works wherever the API does.
var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ms":    func(v int64) string { return fmt.Sprintf("%d ms", v) },
	"bytes": humanBytes,
	"rate":  func(v float64) string { return fmt.Sprintf("%.0f/s", v) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"first": func(n int, cs []runner.CheckpointView) []runner.CheckpointView { return cs[:min(n, len(cs))] },
	"lower": func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 32
			}
		}
		return string(b)
	},
}).Parse(pageHTML))

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (s *server) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	jobs := s.r.Jobs()
	if err := pageTmpl.Execute(w, map[string]any{"Jobs": jobs, "Now": time.Now().UTC().Format(time.RFC3339)}); err != nil {
		s.log.Warn("render page", "err", err)
	}
}

const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>Onceflow runner</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px} .sub{color:#57606a;margin-bottom:18px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:18px}
th,td{border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
.state{font-weight:700;padding:2px 6px;border-radius:4px;color:#fff}
.running{background:#1a7f37}.starting,.restarting,.stopping{background:#9a6700}
.failed{background:#cf222e}.stopped,.finished,.cancelled{background:#57606a}
.reason{color:#cf222e;font-size:12px} .num{text-align:right;font-variant-numeric:tabular-nums}
h2{font-size:16px;margin:18px 0 6px} code{font-size:12px}
</style></head><body>
<h1>Onceflow runner</h1>
<div class="sub">{{len .Jobs}} job(s) &middot; updated {{.Now}}</div>
<table id="jobs"><tr><th>Job</th><th>Name</th><th>State</th><th>PID</th><th>Restarts</th>
<th>In</th><th>Out</th><th>Checkpoints</th><th>Last checkpoint</th></tr>
{{range .Jobs}}<tr id="job-{{.ID}}"><td><code>{{.ID}}</code></td><td>{{.Name}}</td>
<td><span class="state {{lower .State}}">{{.State}}</span>{{if .Reason}}<div class="reason">{{.Reason}}</div>{{end}}</td>
<td class="num">{{if .PID}}{{.PID}}{{end}}</td>
<td class="num">{{.ProcessRestarts}}{{if .Engine}} + {{.Engine.Restarts}}{{end}}</td>
<td class="num">{{.InputRecords}} ({{rate .InputRate}})</td><td class="num">{{.OutputRecords}} ({{rate .OutputRate}})</td>
<td class="num">{{.CheckpointsCompleted}}</td>
<td>{{with first 1 .Checkpoints}}{{range .}}#{{.ID}} {{.Kind}}, {{ms .DurationMillis}}, {{bytes .Bytes}}, {{ago .At}}{{end}}{{end}}</td></tr>
{{else}}<tr><td colspan="9">No jobs. Submit one with <code>onceflow submit</code>.</td></tr>{{end}}
</table>
{{range .Jobs}}{{if .Checkpoints}}<h2>Checkpoint history of {{.ID}} ({{.Name}})</h2>
<table class="history"><tr><th>ID</th><th>Kind</th><th>Duration</th><th>Size</th><th>Completed</th><th>Restore path</th></tr>
{{range first 10 .Checkpoints}}<tr><td class="num">{{.ID}}</td><td>{{.Kind}}{{if .Aborted}} <span class="reason">aborted: {{.Aborted}}</span>{{end}}</td>
<td class="num">{{ms .DurationMillis}}</td><td class="num">{{bytes .Bytes}}</td><td>{{ago .At}}</td><td><code>{{.Path}}</code></td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>
`
