package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"time"
)

// The plot is a percentile chart in the HdrHistogram style: the x axis is
// log10(1/(1-q)), so 50%, 90%, 99%, 99.9% and 99.99% are evenly spaced and
// the tail that users notice gets as much room as the median; the y axis is
// latency in milliseconds. It is drawn with image/png and a built-in 5x7
// bitmap font so that the tool needs no plotting library.

const (
	plotW, plotH = 960, 600
	marginL      = 100
	marginR      = 30
	marginT      = 60
	marginB      = 70
	fontScale    = 2
	maxNines     = 4.0 // the x axis ends at 99.99%
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colAxis       = color.RGBA{40, 40, 40, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	seriesColors  = []color.RGBA{
		{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255},
		{255, 127, 14, 255}, {148, 103, 189, 255},
	}
)

// writePlot draws the series as percentile curves into a PNG file.
func writePlot(path, title string, ss []series) error {
	img := renderPlot(title, ss)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func renderPlot(title string, ss []series) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fillRect(img, img.Bounds(), colBackground)
	x0, x1, y0, y1 := marginL, plotW-marginR, plotH-marginB, marginT

	var top time.Duration
	for _, s := range ss {
		top = max(top, s.h.quantile(0.9999))
	}
	ymax := niceCeil(float64(top) / float64(time.Millisecond))
	px := func(nines float64) int {
		return x0 + int(math.Min(nines, maxNines)/maxNines*float64(x1-x0))
	}
	py := func(ms float64) int { return y0 - int(math.Min(ms, ymax)/ymax*float64(y0-y1)) }

	// Grid, ticks and labels.
	for i, lab := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		x := px(float64(i))
		line(img, x, y0, x, y1, colGrid, 1)
		drawText(img, x-textWidth(lab)/2, y0+10, lab, colAxis)
	}
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		y := py(v)
		line(img, x0, y, x1, y, colGrid, 1)
		lab := strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
		drawText(img, x0-10-textWidth(lab), y-7, lab, colAxis)
	}
	line(img, x0, y0, x1, y0, colAxis, 2)
	line(img, x0, y0, x0, y1, colAxis, 2)
	drawText(img, (x0+x1-textWidth("PERCENTILE"))/2, y0+40, "PERCENTILE", colAxis)
	drawText(img, 10, y1-40, "LATENCY MS", colAxis)
	drawText(img, (plotW-textWidth(title))/2, 14, title, colAxis)

	// Curves: bucket i holds the samples between the cumulative fractions
	// of bucket i-1 and i, so it is a horizontal step over that range.
	for si, s := range ss {
		c := seriesColors[si%len(seriesColors)]
		vals, cum := s.h.points()
		prevX, prevY, prevQ := -1, 0, 0.0
		for i := range vals {
			y := py(float64(vals[i]) / float64(time.Millisecond))
			xa, xb := px(nines(prevQ)), px(nines(cum[i]))
			if prevX >= 0 {
				line(img, prevX, prevY, xa, y, c, 2)
			}
			line(img, xa, y, xb, y, c, 2)
			prevX, prevY, prevQ = xb, y, cum[i]
		}
		lab := fmt.Sprintf("%s (N=%d)", s.name, s.h.count())
		ly := y1 + 10 + si*22
		fillRect(img, image.Rect(x0+16, ly+2, x0+36, ly+12), c)
		drawText(img, x0+44, ly, lab, colAxis)
	}
	return img
}

// nines maps a cumulative fraction to log10(1/(1-q)).
func nines(q float64) float64 {
	if q >= 1 {
		return maxNines
	}
	return math.Log10(1 / (1 - q))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws a segment of the given width with Bresenham's algorithm.
func line(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA, width int) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := sign(xb-xa), sign(yb-ya)
	e := dx + dy
	for {
		fillRect(img, image.Rect(xa, ya, xa+width, ya+width), c)
		if xa == xb && ya == yb {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			xa += sx
		} else {
			e += dx
			ya += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func textWidth(s string) int { return len(s) * 6 * fontScale }

// drawText draws s in upper case with the 5x7 font; unknown characters are
// drawn as blanks.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for i, r := range strings.ToUpper(s) {
		g := glyphs[r]
		for row := 0; row < 7; row++ {
			for col := 0; col < 5; col++ {
				if g[row]&(0x10>>col) != 0 {
					px := x + (i*6+col)*fontScale
					fillRect(img, image.Rect(px, y+row*fontScale, px+fontScale, y+(row+1)*fontScale), c)
				}
			}
		}
	}
}

// glyphs is a 5x7 font: seven rows per character, the low five bits of each
// row being its pixels from left to right.
var glyphs = map[rune][7]byte{
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, 'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, 'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, 'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, 'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, 'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, 'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, 'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, 'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, 'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, '%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	'-': {0, 0, 0, 0x1F, 0, 0, 0}, '_': {0, 0, 0, 0, 0, 0, 0x1F},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, ')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}, '/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
	',': {0, 0, 0, 0, 0x0C, 0x04, 0x08}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
}
