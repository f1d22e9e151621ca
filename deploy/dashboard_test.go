package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// dashboardQueries returns every PromQL expression of the dashboard, with
// the panel (or variable) it belongs to.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("grafana/ferry.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource any    `json:"datasource"`
			Targets    []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/ferry.json: %v", err)
	}
	if d.UID == "" {
		t.Errorf("the dashboard has no uid")
	}
	q := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m, _ := v.Query.(map[string]any)
		s, _ := m["query"].(string)
		if s == "" {
			t.Errorf("variable %s: no query", v.Name)
		}
		q[s] = "variable " + v.Name
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if fmt.Sprint(p.Datasource) != "map[type:prometheus uid:${datasource}]" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			q[tg.Expr] = "panel " + p.Title
		}
	}
	return q
}

var (
	// Label matchers and grouping clauses hold label names, not metrics.
	matchersRE = regexp.MustCompile(`\{[^}]*\}|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// label_values(metric, label): only the metric.
	labelValuesRE = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)`)
	metricRE      = regexp.MustCompile(`\b((?:ferry|process|go)_[a-z0-9_]+)\b`)
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	expr = labelValuesRE.ReplaceAllString(expr, "$1")
	expr = matchersRE.ReplaceAllString(expr, " ")
	var out []string
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDashboardMetrics: every metric the Grafana dashboard queries is in
// /metrics of a ferry syncing between real redis-servers, and /metrics is
// clean by promlint.
func TestDashboardMetrics(t *testing.T) {
	queries := dashboardQueries(t)
	used := map[string]string{}
	for expr, where := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			used[n] = where
		}
	}

	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0}, Seed: 9})
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cmd := exec.Command(redistest.FerryBinary(t), "sync", "--source", src.URL(), "--target", dst.URL())
	cmd.Env = append(os.Environ(), "FERRY_STATUS_ADDR="+addr, "FERRY_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		"FERRY_JOB=dash", "FERRY_LOG_FORMAT=json", "FERRY_PROGRESS=off")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
		}
	})

	var body string
	streaming := `ferry_phase{ferry_job="dash",phase="streaming"} 1`
	redistest.WaitFor(t, time.Minute, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("ferry exited: %v\n%s", err, logs.String())
		default:
		}
		body = get(t, "http://"+addr+"/metrics")
		return strings.Contains(body, streaming)
	}, "%s in /metrics", streaming)
	// A live write, so that the stream counters have moved.
	sc.Set(context.Background(), "after-snapshot", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool { return dst.Do(t, "EXISTS", "after-snapshot").(int64) == 1 }, "the live write on the target")
	body = get(t, "http://"+addr+"/metrics")

	have := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(l, "{")
		name, _, _ = strings.Cut(name, " ")
		have[name] = true
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !have[n] {
			t.Errorf("%s queries %s, which /metrics of a running sync does not have", used[n], n)
		}
	}
	if !regexp.MustCompile(`(?m)^ferry_build_info\{goversion="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`).MatchString(body) {
		t.Errorf("/metrics has no ferry_build_info{goversion,revision,version} 1:\n%s", grep(body, "ferry_build_info"))
	}

	t.Logf("%d metrics of the dashboard checked: %s", len(names), strings.Join(names, " "))

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
