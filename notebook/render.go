package notebook

import (
	"context"
	"fmt"
	"html"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/webservice"
)

// renderTimeout bounds the state queries of Render, which has no context.
const renderTimeout = 30 * time.Second

// Render returns the display of v: a Data as it is; *aml.Model and
// []*aml.Model, *webservice.Service, *endpoint.Endpoint, *compute.Target and
// *LoadResult as tables and charts; []string as log lines; an error as its
// message; anything else as its %v text. State queries are bounded by 30 s.
func Render(v any) Data {
	ctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
	defer cancel()
	switch v := v.(type) {
	case Data:
		return v
	case interface{ MIMEBundle() map[string]string }:
		m := v.MIMEBundle()
		return Data{Text: m[MIMEText], HTML: m[MIMEHTML], SVG: m[MIMESVG]}
	case *aml.Model:
		return Models([]*aml.Model{v})
	case []*aml.Model:
		return Models(v)
	case *webservice.Service:
		return Service(ctx, v)
	case *endpoint.Endpoint:
		return Endpoint(ctx, v)
	case *compute.Target:
		return Target(ctx, v)
	case *LoadResult:
		return v.Data()
	case []string:
		return Logs(v)
	case error:
		return Text("error: " + v.Error())
	case nil:
		return Text("<nil>")
	}
	return Text(fmt.Sprintf("%v", v))
}

// table is a rectangular table rendered as text and as HTML.
type table struct {
	caption string
	head    []string
	rows    [][]string
	notes   []string // lines under the table (errors, remarks)
}

func (t table) data() Data {
	var txt strings.Builder
	if t.caption != "" {
		txt.WriteString(t.caption + "\n")
	}
	tw := tabwriter.NewWriter(&txt, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.head, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
	for _, n := range t.notes {
		txt.WriteString(n + "\n")
	}

	var h strings.Builder
	h.WriteString(`<table class="aksml">`)
	if t.caption != "" {
		h.WriteString("<caption>" + html.EscapeString(t.caption) + "</caption>")
	}
	h.WriteString("<thead><tr>")
	for _, c := range t.head {
		h.WriteString("<th>" + html.EscapeString(c) + "</th>")
	}
	h.WriteString("</tr></thead><tbody>")
	for _, r := range t.rows {
		h.WriteString("<tr>")
		for _, c := range r {
			h.WriteString("<td>" + cellHTML(c) + "</td>")
		}
		h.WriteString("</tr>")
	}
	h.WriteString("</tbody></table>")
	for _, n := range t.notes {
		h.WriteString("<p>" + html.EscapeString(n) + "</p>")
	}
	return Data{Text: strings.TrimRight(txt.String(), "\n"), HTML: h.String()}
}

// cellHTML escapes a table cell and colours well-known states.
func cellHTML(c string) string {
	e := html.EscapeString(c)
	colour := ""
	switch c {
	case string(driver.Healthy), string(compute.ProvisioningSucceeded):
		colour = "#1a7f37"
	case string(driver.Failed), string(driver.Unhealthy), string(driver.Unschedulable):
		colour = "#cf222e"
	case string(driver.Transitioning), string(compute.ProvisioningCreating):
		colour = "#9a6700"
	}
	if colour != "" {
		return `<span style="color:` + colour + `;font-weight:bold">` + e + `</span>`
	}
	return e
}

func kv(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// Models renders registered models as a table.
func Models(ms []*aml.Model) Data {
	t := table{caption: "Models", head: []string{"id", "name", "version", "framework", "size", "digest", "tags", "created"}}
	for _, m := range ms {
		if m == nil {
			continue
		}
		d := m.Digest.String()
		if len(d) > 19 {
			d = d[:19] + "…"
		}
		t.rows = append(t.rows, []string{m.ID(), m.Name, strconv.Itoa(m.Version), string(m.Framework),
			strconv.FormatInt(m.Size, 10) + " B", d, kv(m.Tags), m.CreatedTime.UTC().Format(time.RFC3339)})
	}
	return t.data()
}

func authMode(c webservice.DeployConfig) string {
	switch {
	case c.TokenAuthEnabled:
		return "token"
	case c.AuthEnabled != nil && !*c.AuthEnabled:
		return "none"
	}
	return "key"
}

func replicas(v driver.VersionStatus) string {
	return fmt.Sprintf("%d/%d", v.Ready, v.Desired)
}

// Service renders a service: its state, replicas, URIs, models and auth.
func Service(ctx context.Context, svc *webservice.Service) Data {
	rec := svc.Record()
	t := table{caption: "Service " + svc.Name(),
		head: []string{"name", "state", "replicas (ready/desired)", "scoring URI", "swagger URI", "models", "auth", "generation"}}
	state, reps := "unknown", "-"
	st, err := svc.Status(ctx)
	if err != nil {
		t.notes = append(t.notes, "status: "+err.Error())
	} else {
		state = string(st.State)
		if len(st.Versions) > 0 {
			ready, desired := 0, 0
			for _, v := range st.Versions {
				ready += v.Ready
				desired += v.Desired
			}
			reps = fmt.Sprintf("%d/%d", ready, desired)
		}
		if st.Message != "" && st.State != driver.Healthy {
			t.notes = append(t.notes, st.Message)
		}
	}
	t.rows = append(t.rows, []string{svc.Name(), state, reps, svc.ScoringURI(), svc.SwaggerURI(),
		strings.Join(rec.ModelIDs, ", "), authMode(rec.Config), strconv.FormatInt(rec.Generation, 10)})
	return t.data()
}

// Endpoint renders an endpoint: one row per version with its type, traffic
// share, state, replicas and URI.
func Endpoint(ctx context.Context, ep *endpoint.Endpoint) Data {
	rec := ep.Record()
	t := table{caption: fmt.Sprintf("Endpoint %s (%s auth) %s", ep.Name(), rec.Auth, ep.ScoringURI()),
		head: []string{"version", "type", "default", "traffic %", "effective %", "state", "replicas (ready/desired)", "models", "scoring URI"}}
	byName := map[string]driver.VersionStatus{}
	if st, err := ep.Status(ctx); err != nil {
		t.notes = append(t.notes, "status: "+err.Error())
	} else {
		for _, v := range st.Versions {
			byName[v.Name] = v
		}
		if st.Message != "" && st.State != driver.Healthy {
			t.notes = append(t.notes, st.Message)
		}
	}
	shares := EffectiveSplit(rec)
	for _, v := range rec.Versions {
		name := v.Config.VersionName
		state, reps := "unknown", "-"
		if s, ok := byName[name]; ok {
			state, reps = string(s.State), replicas(s)
		}
		def := ""
		if v.Config.IsDefault {
			def = "yes"
		}
		t.rows = append(t.rows, []string{name, string(v.Type), def, fmtPct(v.Config.TrafficPercentile),
			fmtPct(shares[name]), state, reps, strings.Join(v.ModelIDs, ", "), v.ScoringURI})
	}
	return t.data()
}

// Target renders a compute target: type, provisioning state, VM size and
// node count.
func Target(ctx context.Context, target *compute.Target) Data {
	rec := target.Record()
	t := table{caption: "Compute target " + target.Name(),
		head: []string{"name", "type", "state", "attached", "purpose", "VM size", "nodes", "created"}}
	state := string(rec.ProvisioningState)
	if s, err := target.Status(ctx); err != nil {
		t.notes = append(t.notes, "status: "+err.Error())
	} else {
		state = string(s)
	}
	purpose, size, nodes := "-", "-", "-"
	if p := rec.Provisioning; p != nil {
		purpose, size, nodes = string(p.ClusterPurpose), p.VMSize, strconv.Itoa(p.AgentCount)
	}
	t.rows = append(t.rows, []string{rec.Name, rec.ComputeType, state, strconv.FormatBool(rec.IsAttached),
		purpose, size, nodes, rec.CreatedOn.UTC().Format(time.RFC3339)})
	return t.data()
}

func fmtPct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// EffectiveSplit returns the share of the endpoint's traffic, in percent,
// each version receives by its rules: its traffic percentile, and for the
// default version also what no version claims.
func EffectiveSplit(rec endpoint.Record) map[string]float64 {
	out := map[string]float64{}
	claimed := 0.0
	def := ""
	for _, v := range rec.Versions {
		out[v.Config.VersionName] = v.Config.TrafficPercentile
		claimed += v.Config.TrafficPercentile
		if v.Config.IsDefault {
			def = v.Config.VersionName
		}
	}
	if def != "" && claimed < 100 {
		out[def] += 100 - claimed
	}
	return out
}

// TrafficSplit draws the endpoint's effective traffic split as a bar chart,
// one bar per version (in creation order) labelled with its share.
func TrafficSplit(ep *endpoint.Endpoint) Data {
	rec := ep.Record()
	shares := EffectiveSplit(rec)
	var bars []bar
	var txt strings.Builder
	fmt.Fprintf(&txt, "traffic split of %s:", ep.Name())
	for _, v := range rec.Versions {
		n := v.Config.VersionName
		bars = append(bars, bar{label: n, value: shares[n], text: fmtPct(shares[n]) + " %"})
		fmt.Fprintf(&txt, " %s %s%%", n, fmtPct(shares[n]))
	}
	return Data{Text: txt.String(), SVG: hbarChart("Traffic split of "+ep.Name(), bars, 100)}
}

// Logs renders log lines as preformatted text.
func Logs(lines []string) Data {
	s := strings.Join(lines, "\n")
	return Data{Text: s, HTML: `<pre class="aksml-logs">` + html.EscapeString(s) + `</pre>`}
}

// ServiceLogs renders the last tail lines of a service's logs (Logs with
// init false); an error is rendered as a line.
func ServiceLogs(ctx context.Context, svc *webservice.Service, tail int) Data {
	lines, err := svc.Logs(ctx, tail, false)
	if err != nil {
		return Text("logs: " + err.Error())
	}
	return Logs(lines)
}
