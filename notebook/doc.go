// Package notebook holds what a Jupyter notebook needs from aksml beyond the
// library itself: rich displays and load runs.
//
// # Displays
//
// Render turns aksml's values into a Data, a MIME bundle with a plain-text
// form and, where a picture helps, an HTML table or an SVG chart: models,
// services, endpoints and compute targets become tables (state, URIs,
// replicas, versions); TrafficSplit draws an endpoint's traffic split as a bar
// chart; a LoadResult draws its latency histogram and its per-version request
// counts; Logs shows service logs as preformatted text. Show sends a Data to
// the notebook: the aksml Jupyter kernel (cmd/aksml-kernel) installs a
// publisher with SetPublisher that turns it into a display_data message;
// outside a kernel Show prints the plain-text form to standard output. A
// cell whose last expression is a Data is displayed the same way.
//
// Renderers that ask a backend for state (Service, Endpoint, Target,
// TrafficSplit) take a context; a failure is rendered into the Data as an
// error line instead of being returned, so a display never stops a cell.
//
// # Load runs
//
// RunLoad sends a bounded number of scoring requests to a URI with a fixed
// number of concurrent callers and records each answer's latency, status and
// the version that served it (the front-end's aksml-served-by header), which
// LoadResult summarises and draws.
package notebook
