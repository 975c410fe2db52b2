package notebook

import (
	"fmt"
	"html"
	"strings"
)

// bar is one bar of a chart.
type bar struct {
	label string
	value float64
	text  string // printed beside the bar
}

var palette = []string{"#0969da", "#bf8700", "#1a7f37", "#8250df", "#cf222e", "#1b7c83", "#57606a"}

func esc(s string) string { return html.EscapeString(s) }

// hbarChart draws horizontal bars scaled to max (the largest value when max
// is 0), one row per bar.
func hbarChart(title string, bars []bar, max float64) string {
	if max <= 0 {
		for _, b := range bars {
			max = maxf(max, b.value)
		}
	}
	if max <= 0 {
		max = 1
	}
	const labelW, barW, rowH, top = 140.0, 360.0, 28.0, 34.0
	width := labelW + barW + 90
	height := top + rowH*float64(len(bars)) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="13">`, width, height, width, height)
	fmt.Fprintf(&b, `<text x="8" y="20" font-weight="bold">%s</text>`, esc(title))
	for i, br := range bars {
		y := top + rowH*float64(i)
		w := barW * br.value / max
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, labelW-8, y+rowH/2+4, esc(br.label))
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			labelW, y+4, w, rowH-8, palette[i%len(palette)], esc(br.label), esc(br.text))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, labelW+w+6, y+rowH/2+4, esc(br.text))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// vbarChart draws a histogram-like chart: vertical bars with a label under
// each, sharing one scale.
func vbarChart(title, xTitle string, bars []bar) string {
	max := 0.0
	for _, b := range bars {
		max = maxf(max, b.value)
	}
	if max <= 0 {
		max = 1
	}
	const left, plotH, top, bottom = 48.0, 180.0, 34.0, 56.0
	slot := 28.0
	if len(bars) > 0 && len(bars) < 8 {
		slot = 60
	}
	width := left + slot*float64(len(bars)) + 20
	height := top + plotH + bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`, width, height, width, height)
	fmt.Fprintf(&b, `<text x="8" y="20" font-size="13" font-weight="bold">%s</text>`, esc(title))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#57606a"/>`, left, top+plotH, width-10, top+plotH)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`, left-4, top+8, esc(fmt.Sprintf("%g", max)))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">0</text>`, left-4, top+plotH)
	for i, br := range bars {
		x := left + slot*float64(i)
		h := plotH * br.value / max
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x+2, top+plotH-h, slot-4, h, palette[0], esc(br.label), esc(br.text))
		if br.value > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+slot/2, top+plotH-h-3, esc(br.text))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-45 %.1f %.1f)">%s</text>`,
			x+slot/2, top+plotH+12, x+slot/2, top+plotH+12, esc(br.label))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`, left+slot*float64(len(bars))/2, height-4, esc(xTitle))
	b.WriteString(`</svg>`)
	return b.String()
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
