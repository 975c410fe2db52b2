package notebook

import (
	"fmt"
	"os"
	"sync"
)

// MIME types of a Data.
const (
	MIMEText = "text/plain"
	MIMEHTML = "text/html"
	MIMESVG  = "image/svg+xml"
)

// Data is one rich display: the same content as plain text, and optionally
// as HTML and as an SVG image. Jupyter front-ends show the richest form they
// can; the plain text is what a terminal or a test reads.
type Data struct {
	Text string
	HTML string
	SVG  string
}

// MIMEBundle returns the non-empty forms keyed by MIME type, the shape of
// Jupyter's display_data and execute_result "data" field. The kernel
// displays any value with this method richly.
func (d Data) MIMEBundle() map[string]string {
	m := map[string]string{MIMEText: d.Text}
	if d.HTML != "" {
		m[MIMEHTML] = d.HTML
	}
	if d.SVG != "" {
		m[MIMESVG] = d.SVG
	}
	return m
}

// String returns the plain-text form.
func (d Data) String() string { return d.Text }

// HTML returns a Data showing html (its text form is html itself).
func HTML(html string) Data { return Data{Text: html, HTML: html} }

// SVG returns a Data showing an SVG image.
func SVG(svg string) Data { return Data{Text: "[SVG image]", SVG: svg} }

// Text returns a Data of plain text.
func Text(text string) Data { return Data{Text: text} }

var (
	pubMu     sync.Mutex
	publisher func(Data)
)

// SetPublisher makes Show hand every Data to publish, and returns a function
// that restores the previous publisher. A kernel calls it once at start; nil
// restores the default (plain text to standard output).
func SetPublisher(publish func(Data)) (restore func()) {
	pubMu.Lock()
	prev := publisher
	publisher = publish
	pubMu.Unlock()
	return func() {
		pubMu.Lock()
		publisher = prev
		pubMu.Unlock()
	}
}

// Show displays each value: a Data as it is, anything else through Render.
func Show(values ...any) {
	pubMu.Lock()
	pub := publisher
	pubMu.Unlock()
	for _, v := range values {
		d := Render(v)
		if pub != nil {
			pub(d)
			continue
		}
		fmt.Fprintln(os.Stdout, d.Text)
	}
}
