package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// point is one `pecet bench --json` run.
type point struct {
	Conc  int
	Rate  float64
	P99   float64 // ms
	Ratio float64 // 0 without --baseline
	Load  string  // 1-minute load average before the run
}

func sweep(args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	out := fs.String("out", "docs/perf-sweep.png", "PNG `file` to write")
	pecet := fs.String("pecet", "pecet", "pecet `binary`")
	op := fs.String("op", "sign-digest", "bench operation")
	key := fs.String("key", "", "key alias (default: the operation's)")
	concs := fs.String("concurrency", "1,2,4,8,16,32", "comma-separated concurrencies")
	dur := fs.Duration("duration", 5*time.Second, "duration of each run")
	replot := fs.String("replot", "", "draw the PNG from a `table` this command printed before, without running pecet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *replot != "" {
		pts, err := readTable(*replot)
		if err != nil {
			return err
		}
		return writePNG(*out, plot(pts, fmt.Sprintf("%s  OPS/S (BLUE)  P99 MS (RED)", strings.ToUpper(*op))))
	}
	var pts []point
	fmt.Println("| concurrency | ops/s | p99 ms | ratio | load avg |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, s := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("--concurrency: %q", s)
		}
		a := []string{"bench", "--op", *op, "--concurrency", strconv.Itoa(c), "--duration", dur.String(), "--warmup", "1s", "--json"}
		if *key != "" {
			a = append(a, "--key", *key)
		}
		a = append(a, fs.Args()...)
		load := loadAvg()
		cmd := exec.Command(*pecet, a...)
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", *pecet, strings.Join(a, " "), err, b)
		}
		var r struct {
			Rate    float64            `json:"ops_per_s"`
			Latency map[string]float64 `json:"latency_ms"`
			Ratio   float64            `json:"ratio"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("pecet bench output: %w", err)
		}
		p := point{Conc: c, Rate: r.Rate, P99: r.Latency["p99"], Ratio: r.Ratio, Load: load}
		pts = append(pts, p)
		fmt.Printf("| %d | %.0f | %.1f | %.3f | %s |\n", p.Conc, p.Rate, p.P99, p.Ratio, p.Load)
	}
	return writePNG(*out, plot(pts, fmt.Sprintf("%s  OPS/S (BLUE)  P99 MS (RED)", strings.ToUpper(*op))))
}

// readTable reads the rows of the markdown table sweep prints.
func readTable(path string) ([]point, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pts []point
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		if len(f) != 5 {
			continue
		}
		c, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
		rate, err2 := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
		p99, err3 := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue // the header and its rule
		}
		pts = append(pts, point{Conc: c, Rate: rate, P99: p99, Load: strings.TrimSpace(f[4])})
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("%s: no table rows", path)
	}
	return pts, nil
}

func writePNG(path string, img image.Image) error {
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

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{220, 220, 220, 255}
	blue  = color.RGBA{30, 90, 200, 255}
	red   = color.RGBA{200, 40, 40, 255}
)

// plot draws ops/s (left axis, blue) and p99 (right axis, red) against
// concurrency (equal steps, one per run).
func plot(pts []point, title string) *image.RGBA {
	const w, h, left, right, top, bottom = 760, 440, 80, 80, 40, 60
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), white)
	pw, ph := w-left-right, h-top-bottom
	maxRate, maxP99 := 0.0, 0.0
	for _, p := range pts {
		maxRate, maxP99 = math.Max(maxRate, p.Rate), math.Max(maxP99, p.P99)
	}
	maxRate, maxP99 = niceCeil(maxRate), niceCeil(maxP99)
	for i := 0; i <= 4; i++ { // grid and y labels
		y := top + ph - ph*i/4
		hline(img, left, left+pw, y, grey)
		text(img, fmt.Sprintf("%.0f", maxRate*float64(i)/4), 8, y-5, blue)
		text(img, fmt.Sprintf("%.0f", maxP99*float64(i)/4), left+pw+8, y-5, red)
	}
	hline(img, left, left+pw, top+ph, black)
	vline(img, left, top, top+ph, black)
	vline(img, left+pw, top, top+ph, black)
	x := func(i int) int {
		if len(pts) < 2 {
			return left + pw/2
		}
		return left + 20 + (pw-40)*i/(len(pts)-1)
	}
	for i, p := range pts {
		text(img, strconv.Itoa(p.Conc), x(i)-6, top+ph+10, black)
	}
	text(img, "CONCURRENCY", left+pw/2-66, h-24, black)
	text(img, title, left, 12, black)
	series := func(val func(point) float64, max float64, c color.RGBA) {
		var px, py int
		for i, p := range pts {
			cx, cy := x(i), top+ph-int(float64(ph)*val(p)/max)
			fill(img, image.Rect(cx-3, cy-3, cx+4, cy+4), c)
			if i > 0 {
				line(img, px, py, cx, cy, c)
			}
			px, py = cx, cy
		}
	}
	if maxRate > 0 {
		series(func(p point) float64 { return p.Rate }, maxRate, blue)
	}
	if maxP99 > 0 {
		series(func(p point) float64 { return p.P99 }, maxP99, red)
	}
	return img
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1+1, y+1), c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1+1), c) }

// line draws a 2-pixel line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fill(img, image.Rect(x0, y0, x0+2, y0+2), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// text writes s with a 3×5 pixel font scaled by 2 (upper case, digits and
// a few signs; anything else is a blank).
func text(img *image.RGBA, s string, x, y int, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if ok {
			for row := range 5 {
				for col := range 3 {
					if g[row*3+col] == '#' {
						fill(img, image.Rect(x+col*2, y+row*2, x+col*2+2, y+row*2+2), c)
					}
				}
			}
		}
		x += 8
	}
}

var font = map[rune]string{
	'0': "####.##.##.####", '1': ".#.##..#..#.###", '2': "###..#####..###", '3': "###..####..####",
	'4': "#.##.####..#..#", '5': "####..###..####", '6': "####..####.####", '7': "###..#..#..#..#",
	'8': "####.#####.####", '9': "####.####..####", '.': "............#..", '/': "..#..#.#..#.#..",
	'(': ".#.#..#..#...#.", ')': ".#...#..#..#.#.", '-': "......###......", ':': ".#.......#.....",
	'A': ".#.#.####.##.##", 'B': "##.#.###.#.###.", 'C': "####..#..#..###", 'D': "##.#.##.##.###.",
	'E': "####..##.#..###", 'F': "####..###..#...", 'G': "####..#.##.####", 'H': "#.##.####.##.##",
	'I': "###.#..#..#.###", 'J': "..#..#..##.####", 'K': "#.##.###.#.##.#", 'L': "#..#..#..#..###",
	'M': "#.#####.##.##.#", 'N': "##.#.##.##.##.#", 'O': ".#.#.##.##.#.#.", 'P': "##.#.###.#..#..",
	'Q': "####.##.####..#", 'R': "####.###.#.##.#", 'S': ".###...#...###.", 'T': "###.#..#..#..#.",
	'U': "#.##.##.##.####", 'V': "#.##.##.##.#.#.", 'X': "#.##.#.#.#.##.#",
	'Y': "#.##.#.#..#..#.", 'Z': "###..#.#.#..###",
}
